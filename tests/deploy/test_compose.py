"""docker-compose.yml checked offline (no Docker engine here): the Compose spec's schema, a real
Compose binary's `config`, secrets that must be filled, the image's Dockerfile, the database script.
Which platform secrets each service gets: tests/shared/test_deploy_secrets.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.natsperm import OPS_USER
from shared.settings import DEFAULT_PORTS, SERVICES
from tests.deploy.tools import ROOT, compose_binary, run, venv_tool

COMPOSE_PATH = ROOT / "docker-compose.yml"
COMPOSE = COMPOSE_PATH.read_text()
ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
REQUIRED = sorted(set(re.findall(r"\$\{([A-Z_]+):\?set ", COMPOSE)))


def filled_env(tmp_path: Path, drop: str | None = None) -> Path:
    """The example env file with every value filled (but ``drop``, left empty)."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"([A-Z_]+)=", line)
        if match and match.group(1) != drop:
            line += "x" + match.group(1).lower()
        lines.append(line)
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_config(compose_file: Path, env_file: Path) -> tuple[int, str]:
    # --env-file replaces .env; -p fixes the project name so nothing depends on the folder.
    cmd = [compose_binary(), "-f", str(compose_file), "--env-file", str(env_file), "-p", "kinwell", "config", "-q"]
    result = run(cmd)
    return result.returncode, result.stderr


def test_compose_file_matches_the_compose_specification():
    result = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_PATH)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_field(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.replace("condition: service_completed_successfully", "condition: when_done", 1))
    result = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)])
    assert result.returncode != 0


def test_compose_accepts_the_file_once_every_secret_is_filled(tmp_path: Path):
    code, err = compose_config(COMPOSE_PATH, filled_env(tmp_path))
    assert code == 0, err


def test_compose_catches_a_dependency_on_a_service_that_does_not_exist(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.replace("      migrate-checkin:\n", "      migrate-chekin:\n", 1))
    code, err = compose_config(broken, filled_env(tmp_path))
    assert code != 0 and "migrate-chekin" in err


def test_the_example_env_file_lists_exactly_the_required_variables():
    example = set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert example == set(REQUIRED)
    assert all(line.endswith("=") for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"[A-Z_]+=", line))


@pytest.mark.parametrize("var", REQUIRED)
def test_compose_refuses_to_start_while_a_secret_is_empty(tmp_path: Path, var: str):
    code, err = compose_config(COMPOSE_PATH, filled_env(tmp_path, drop=var))
    assert code != 0
    assert f"required variable {var} is missing a value" in err


def test_no_secret_has_a_default():
    for var in re.findall(r"\$\{([A-Z_]*(?:KEY|PASSWORD|SECRETS|TOKEN)[A-Z_]*)([^}]*)\}", COMPOSE):
        name, rest = var
        assert rest.startswith(":?"), f"{name} must be required (${{{name}:?...}})"


def test_compose_runs_nats_postgres_one_shot_steps_and_every_service():
    services = yaml.safe_load(COMPOSE)["services"]
    assert {"nats", "postgres", "provision", *SERVICES, *(f"migrate-{s}" for s in SERVICES)} <= set(services)
    assert "./deploy/nats:/etc/nats:ro" in services["nats"]["volumes"]
    assert "-js" in services["nats"]["command"]
    assert services["provision"]["command"] == ["kinwell", "nats", "provision"]
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["python", "-m", f"services.{name}"]
        env = svc["environment"]
        assert env["KINWELL_MODE"] == "production"
        assert env["KINWELL_DEV_TOKEN_ISSUER"] == "false"
        assert env[f"KINWELL_{name.upper()}_PORT"] == str(DEFAULT_PORTS[name])
        assert env[f"KINWELL_{name.upper()}_DATABASE_URL"].endswith(f"@postgres:5432/kinwell_{name}")
        assert env[f"KINWELL_{name.upper()}_MIGRATE_ON_START"] == "false"
        assert env["KINWELL_HEALTHCHECK_URL"] == f"http://127.0.0.1:{DEFAULT_PORTS[name]}/readyz"
        assert svc["healthcheck"]["test"] == ["CMD", "kinwell", "healthcheck"]
        migrate = services[f"migrate-{name}"]
        assert migrate["command"] == ["kinwell", "migrate", name]
        assert set(migrate["environment"]) == {f"KINWELL_{name.upper()}_DATABASE_URL"}  # no other secret
        # Health-gated start: streams declared, schema migrated, NATS healthy.
        assert svc["depends_on"] == {
            "provision": {"condition": "service_completed_successfully"},
            f"migrate-{name}": {"condition": "service_completed_successfully"},
            "nats": {"condition": "service_healthy"},
        }
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]
    assert services[f"migrate-{SERVICES[0]}"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert set(yaml.safe_load(COMPOSE)["volumes"]) == {"nats-data", "pg-data"}


def test_nats_gets_a_password_for_every_user_of_the_permission_file():
    auth = (ROOT / "deploy" / "nats" / "auth.conf").read_text()
    env = yaml.safe_load(COMPOSE)["services"]["nats"]["environment"]
    users = set(re.findall(r"\$(KINWELL_NATS_[A-Z]+_PASSWORD)", auth))
    assert len(users) == len(SERVICES) + 1  # and ops
    for var in users:
        assert var in env
        assert env[var].startswith('"') and env[var].endswith('"')  # parsed as a string by nats-server
    assert f"KINWELL_NATS_{OPS_USER.upper()}_PASSWORD" in env


def _stages(dockerfile: str) -> list[list[str]]:
    stages: list[list[str]] = []
    for line in re.sub(r"\\\n", " ", dockerfile).splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stages.append([])
        if line and not line.startswith("#") and stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_and_runs_unprivileged_with_a_healthcheck():
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert len(stages) >= 2
    final = stages[-1]
    assert all("slim" in stage[0] for stage in stages)
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0"
    assert any(line.startswith("HEALTHCHECK ") and "kinwell" in line for line in final)
    body = " ".join(final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "COPY . "):
        assert tool not in body, f"final stage must not contain {tool!r}"
    assert "COPY --from=build /opt/kinwell /opt/kinwell" in final


def test_database_script_gives_each_service_its_own_database_and_role():
    script = (ROOT / "deploy" / "postgres" / "init-databases.sh").read_text()
    assert "for service in " + " ".join(SERVICES) + ";" in script
    assert 'CREATE DATABASE :"name" OWNER :"name";' in script
    assert 'REVOKE ALL ON DATABASE :"name" FROM PUBLIC;' in script
