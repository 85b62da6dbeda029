"""A production start with a missing or placeholder secret, or the dev token issuer on, refuses
with one line naming the setting (never its value) — for every service, through its entrypoint."""

from __future__ import annotations

import base64
import importlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from shared.launch import load_settings
from shared.settings import SERVICES, ServiceSettings, _new_ec_private_key_pem
from shared.topology import SERVICE_SECRETS

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = "changeme"


def production_env(service: str) -> dict[str, str]:
    """A complete, safe production environment for ``service``."""
    env = {
        "KINWELL_MODE": "production",
        "KINWELL_DEV_TOKEN_ISSUER": "false",
        "KINWELL_JWT_ALGORITHMS": '["RS256"]',
        "KINWELL_JWKS_JSON": '{"keys": []}',
        f"KINWELL_{service.upper()}_DATABASE_URL": "postgresql://svc:pw@127.0.0.1:9/kinwell",
        f"KINWELL_{service.upper()}_NATS_PASSWORD": secrets.token_hex(16),
    }
    for name in SERVICE_SECRETS[service]:
        value = _new_ec_private_key_pem() if name == "receipt_signing_key" else secrets.token_urlsafe(32)
        env[f"KINWELL_{name.upper()}"] = value
    if service == "consent":
        env["KINWELL_CONSENT_HRIS_WEBHOOK_SECRETS"] = '["whsec_' + base64.b64encode(os.urandom(32)).decode() + '"]'
    return env


def settings_class(service: str) -> type[ServiceSettings]:
    config = importlib.import_module(f"services.{service}.config")
    return next(
        v
        for v in vars(config).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    )


def refusal(service: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for var in list(os.environ):
        if var.startswith("KINWELL_"):
            monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(settings_class(service))
    return str(stopped.value.code)


def first_symmetric_secret(service: str) -> str:
    return next(n for n in SERVICE_SECRETS[service] if n != "receipt_signing_key")


@pytest.mark.parametrize("service", SERVICES)
def test_the_complete_production_environment_is_accepted(service: str, monkeypatch: pytest.MonkeyPatch):
    # The control: each refusal below is caused by the one setting it changes.
    for var in list(os.environ):
        if var.startswith("KINWELL_"):
            monkeypatch.delenv(var)
    for var, value in production_env(service).items():
        monkeypatch.setenv(var, value)
    settings = load_settings(settings_class(service))
    assert settings.platform.mode == "production"


@pytest.mark.parametrize("service", SERVICES)
def test_a_missing_secret_refuses_naming_it(service: str, monkeypatch: pytest.MonkeyPatch):
    name = first_symmetric_secret(service)
    env = production_env(service)
    del env[f"KINWELL_{name.upper()}"]
    message = refusal(service, env, monkeypatch)
    assert message.startswith("kinwell: refusing to start:") and f"{name} is missing" in message


@pytest.mark.parametrize("service", SERVICES)
def test_a_placeholder_secret_refuses_naming_it_but_not_its_value(service: str, monkeypatch: pytest.MonkeyPatch):
    name = first_symmetric_secret(service)
    env = production_env(service) | {f"KINWELL_{name.upper()}": PLACEHOLDER}
    message = refusal(service, env, monkeypatch)
    assert f"{name} is a placeholder" in message and PLACEHOLDER not in message.replace("placeholder", "")


@pytest.mark.parametrize("service", SERVICES)
def test_the_dev_token_issuer_refuses(service: str, monkeypatch: pytest.MonkeyPatch):
    env = production_env(service) | {"KINWELL_DEV_TOKEN_ISSUER": "true"}
    assert "dev_token_issuer must be false" in refusal(service, env, monkeypatch)


def test_each_service_entrypoint_exits_with_the_reason_on_one_line():
    procs = {}
    for service in SERVICES:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINWELL_")} | production_env(service)
        del env[f"KINWELL_{first_symmetric_secret(service).upper()}"]
        cmd = [sys.executable, "-m", f"services.{service}"]
        procs[service] = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for service, proc in procs.items():
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, (service, err[-300:])
        assert err.strip().count("\n") == 0 and "Traceback" not in err, (service, err[-300:])
        assert f"{first_symmetric_secret(service)} is missing" in err, service
