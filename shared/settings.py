"""Typed settings for every Kinwell process.

Two layers, both read from the environment once, at start-up (never at import time):

* :class:`PlatformSettings` (prefix ``KINWELL_``) holds what every service shares: run mode,
  tenant, NATS URL, identity provider, platform secrets, telemetry.
* Each service's ``config.py`` subclasses :class:`ServiceSettings` with its own prefix
  (``KINWELL_CONSENT_`` ...) for its database, port and NATS credentials.

In ``embedded`` mode (``kinwell up``, tests) a secret that is not given is generated once and kept
in ``<data_dir>/dev-secrets.json`` (mode 0600) so that data survives restarts. In ``production``
mode nothing is generated: a missing, placeholder or too-short secret, or the dev token issuer,
refuses to start.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("consent", "checkin", "recommender", "aggregator", "escalation")
DEFAULT_PORTS: dict[str, int] = {name: 8001 + i for i, name in enumerate(SERVICES)}

# Secrets every deployment must provide in production; generated in embedded mode.
SECRET_FIELDS: tuple[str, ...] = (
    "pseudonym_key",
    "period_key",
    "master_key",
    "dev_jwt_secret",
    "receipt_signing_key",
)
_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "dev", "test", "kinwell", ""}
MIN_SECRET_BYTES = 32


class SettingsError(ValueError):
    """Raised when settings are unsafe for the selected mode."""


def _new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode().rstrip("=")


def _new_ec_private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_or_create_dev_secrets(data_dir: Path) -> dict[str, str]:
    """Return the embedded-mode secrets kept in the data folder, creating any that are missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "dev-secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [name for name in SECRET_FIELDS if name not in stored]
    if "receipt_signing_key" in missing:
        stored["receipt_signing_key"] = _new_ec_private_key_pem()
        missing.remove("receipt_signing_key")
    missing += [f"nats_{svc}_password" for svc in (*SERVICES, "ops") if f"nats_{svc}_password" not in stored]
    if "hris_webhook_secret" not in stored:  # the consent service's inbound HRIS webhooks (Standard Webhooks)
        stored["hris_webhook_secret"] = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        missing.append("hris_webhook_secret")
    if missing:
        for name in missing:
            stored.setdefault(name, _new_secret())
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh, indent=2)
        os.replace(tmp, path)
    return stored


class PlatformSettings(BaseSettings):
    """Settings shared by every service (env prefix ``KINWELL_``)."""

    model_config = SettingsConfigDict(env_prefix="KINWELL_", extra="ignore", hide_input_in_errors=True)

    mode: Literal["embedded", "production"] = "embedded"
    tenant: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    data_dir: Path = Path(".kinwell")

    nats_url: str = "nats://127.0.0.1:14222"
    nats_replicas: int = Field(default=1, ge=1, le=5)

    # Identity provider (edge JWTs).
    jwt_issuer: str = "kinwell-dev"
    jwt_audience: str = "kinwell"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    jwks_url: str | None = None
    jwks_json: str | None = None
    dev_token_issuer: bool = True
    max_token_bytes: int = 8192

    # Platform secrets (see SECRET_FIELDS).
    pseudonym_key: SecretStr | None = None
    period_key: SecretStr | None = None
    master_key: SecretStr | None = None
    master_key_id: str = "k1"
    # Retired master keys still needed to unwrap data keys until they are re-wrapped
    # (KINWELL_OLD_MASTER_KEYS='{"k0": "..."}'); see shared.datakeys and `python -m services.checkin.rewrap`.
    old_master_keys: dict[str, SecretStr] = Field(default_factory=dict)
    dev_jwt_secret: SecretStr | None = None
    # ES256 private key (PEM) that signs consent receipts; its public half is published as JWKS.
    receipt_signing_key: SecretStr | None = None

    # Privacy parameters shared by producers and the aggregator.
    k_anonymity: int = Field(default=5, ge=3)

    # Telemetry.
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check_mode(self) -> PlatformSettings:
        if self.mode == "production":
            problems = []
            for name in ("pseudonym_key", "period_key", "master_key"):
                value: SecretStr | None = getattr(self, name)
                if value is None:
                    problems.append(f"{name} is missing")
                elif value.get_secret_value().lower() in _PLACEHOLDERS:
                    problems.append(f"{name} is a placeholder")
                elif len(value.get_secret_value()) < MIN_SECRET_BYTES:
                    problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} characters")
            if self.receipt_signing_key is None:
                problems.append("receipt_signing_key is missing")
            if self.dev_token_issuer:
                problems.append("dev_token_issuer must be false")
            if any(alg.startswith("HS") for alg in self.jwt_algorithms):
                problems.append("production accepts only asymmetric JWT algorithms (RS256/ES256)")
            if not (self.jwks_url or self.jwks_json):
                problems.append("jwks_url or jwks_json is required")
            if problems:
                raise SettingsError("unsafe production settings: " + "; ".join(problems))
        else:
            stored = load_or_create_dev_secrets(self.data_dir)
            for name in SECRET_FIELDS:
                if getattr(self, name) is None:
                    setattr(self, name, SecretStr(stored[name]))
        return self

    def secret(self, name: str) -> bytes:
        """Raw bytes of a platform secret (always present after validation)."""
        value: SecretStr | None = getattr(self, name)
        if value is None:  # pragma: no cover - the validator guarantees presence
            raise SettingsError(f"{name} is not configured")
        return value.get_secret_value().encode()


class ServiceSettings(BaseSettings):
    """Per-service settings; each service subclasses with env prefix ``KINWELL_<NAME>_``."""

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    max_body_bytes: int = 64 * 1024
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if self.database_url is None:
            if self.platform.mode == "production":
                raise SettingsError(f"{self.service_name}: database_url is required in production")
            self.platform.data_dir.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite:///{self.platform.data_dir / (self.service_name + '.db')}"
        if self.nats_user is None:
            self.nats_user = self.service_name
        if self.nats_password is None:
            if self.platform.mode == "production":
                raise SettingsError(f"{self.service_name}: nats_password is required in production")
            stored = load_or_create_dev_secrets(self.platform.data_dir)
            self.nats_password = SecretStr(stored[f"nats_{self.service_name}_password"])
        return self


def nats_password_env(service: str) -> str:
    """Name of the environment variable the NATS permission file reads a service's password from."""
    return f"KINWELL_NATS_{service.upper()}_PASSWORD"
