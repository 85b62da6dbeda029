"""Issue 11.1 in the production stack: docker-compose gives each service only its topology secrets."""

from pathlib import Path

import yaml

from shared.settings import SECRET_FIELDS, SERVICES
from shared.topology import SERVICE_SECRETS

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
SECRET_VARS = {f"KINWELL_{name.upper()}": name for name in SECRET_FIELDS}


def _secrets_of(service: str) -> set[str]:
    env = COMPOSE["services"][service].get("environment", {})
    return {SECRET_VARS[var] for var in env if var in SECRET_VARS}


def test_each_compose_service_gets_exactly_its_topology_secrets():
    for name in SERVICES:
        assert _secrets_of(name) == set(SERVICE_SECRETS[name]), name
    assert not {"pseudonym_key", "period_key", "master_key"} & _secrets_of("aggregator")


def test_the_provisioner_gets_no_platform_secret():
    assert _secrets_of("provision") == set()
