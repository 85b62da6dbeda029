"""docker-compose.yml checked offline (no Docker engine here): shape, secrets, permission file."""

import re
from pathlib import Path

import yaml

from shared.settings import DEFAULT_PORTS, SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def test_compose_runs_nats_postgres_provisioner_and_every_service():
    doc = yaml.safe_load(COMPOSE)
    services = doc["services"]
    assert {"nats", "postgres", "provision", *SERVICES} <= set(services)
    assert "./deploy/nats:/etc/nats:ro" in services["nats"]["volumes"]
    assert services["provision"]["command"] == ["kinwell", "nats", "provision"]
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["python", "-m", f"services.{name}"]
        env = svc["environment"]
        assert env["KINWELL_MODE"] == "production"
        assert env[f"KINWELL_{name.upper()}_PORT"] == str(DEFAULT_PORTS[name])
        assert env[f"KINWELL_{name.upper()}_DATABASE_URL"].endswith(f"/kinwell_{name}")
        assert svc["depends_on"]["provision"]["condition"] == "service_completed_successfully"


def test_no_secret_has_a_default():
    for var in re.findall(r"\$\{([A-Z_]*(?:KEY|PASSWORD)[A-Z_]*)([^}]*)\}", COMPOSE):
        name, rest = var
        assert not rest.startswith(":-"), f"{name} has a default"


def test_nats_gets_a_password_for_every_user_of_the_permission_file():
    auth = (ROOT / "deploy" / "nats" / "auth.conf").read_text()
    env = yaml.safe_load(COMPOSE)["services"]["nats"]["environment"]
    for var in set(re.findall(r"\$(KINWELL_NATS_[A-Z]+_PASSWORD)", auth)):
        assert var in env


def test_every_service_database_is_created():
    init = (ROOT / "deploy" / "postgres" / "init.sql").read_text()
    for name in SERVICES:
        assert f"CREATE DATABASE kinwell_{name};" in init
