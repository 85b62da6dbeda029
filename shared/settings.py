"""Typed settings for every Kinwell process.

Two layers, both read from the environment once, at start-up (never at import time):

* :class:`PlatformSettings` (prefix ``KINWELL_``) holds what every service shares: run mode,
  tenant, NATS URL, identity provider, platform secrets, telemetry.
* Each service's ``config.py`` subclasses :class:`ServiceSettings` with its own prefix
  (``KINWELL_CONSENT_`` ...) for its database, port and NATS credentials.

Least privilege: each service holds only the platform secrets it uses, as declared in
``shared.topology.SERVICE_SECRETS`` (the aggregator holds none of the pseudonym, period and master
keys). :class:`ServiceSettings` drops every other secret, so ``platform.secret(name)`` of a secret
the service does not hold raises :class:`SettingsError`.

In ``embedded`` mode (``kinwell up``, tests) a secret that is not given is generated once and kept
in ``<data_dir>/dev-secrets.json`` (mode 0600) so that data survives restarts; ``kinwell up``
hands each service process only its own secrets in its environment and tells it not to read that
file (``KINWELL_LOAD_DEV_SECRETS=false``). In ``production`` mode nothing is generated: a service
missing a secret it holds, a placeholder or too-short secret, or the dev token issuer, refuses to
start; secrets it does not hold are not required.
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

from shared.crypto import Keyring

SERVICES: tuple[str, ...] = ("consent", "checkin", "recommender", "aggregator", "escalation")
DEFAULT_PORTS: dict[str, int] = {name: 8001 + i for i, name in enumerate(SERVICES)}

# Platform secrets (generated in embedded mode). Which service holds which: shared.topology.
SECRET_FIELDS: tuple[str, ...] = (
    "pseudonym_key",
    "period_key",
    "master_key",
    "webhook_key",
    "manager_scope_key",
    "dev_jwt_secret",
    "receipt_signing_key",
    "event_key_kek",
    "audit_key",
)
# Root keys under rotation (shared.crypto.Keyring): secret -> (its key id field, retired keys field).
KEYRINGS: dict[str, tuple[str, str]] = {
    "master_key": ("master_key_id", "old_master_keys"),
    "webhook_key": ("webhook_key_id", "old_webhook_keys"),
}
# Symmetric secrets whose strength is checked (the receipt key is a PEM, checked when loaded).
_STRENGTH_CHECKED = (
    "pseudonym_key",
    "period_key",
    "master_key",
    "webhook_key",
    "manager_scope_key",
    "event_key_kek",
    "audit_key",
)
# Given to every process in embedded mode only (production accepts no HS256 tokens).
EMBEDDED_ONLY_SECRETS: tuple[str, ...] = ("dev_jwt_secret",)
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
        write_dev_secrets(data_dir, stored)
    return stored


def write_dev_secrets(data_dir: Path, stored: dict[str, str]) -> None:
    """Replace ``<data_dir>/dev-secrets.json`` atomically, readable by its owner only."""
    path = data_dir / "dev-secrets.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(stored, fh, indent=2)
    os.replace(tmp, path)


def new_secret() -> str:
    """A fresh random secret (32 bytes, URL-safe base64), as generated for embedded mode."""
    return _new_secret()


class PlatformSettings(BaseSettings):
    """Settings shared by every service (env prefix ``KINWELL_``)."""

    model_config = SettingsConfigDict(env_prefix="KINWELL_", extra="ignore", hide_input_in_errors=True)

    mode: Literal["embedded", "production"] = "embedded"
    tenant: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    data_dir: Path = Path(".kinwell")

    # One URL, or a cluster's as a comma-separated list (nats://a:4222,nats://b:4222).
    nats_url: str = "nats://127.0.0.1:14222"
    # Replicas of every stream and the KV bucket (the provisioner's setting; 3 on a NATS cluster).
    nats_replicas: int = Field(default=1, ge=1, le=5)
    # CA of the NATS servers' certificate, for tls:// URLs signed by a private CA (Kubernetes).
    nats_tls_ca_file: Path | None = None

    # Identity provider (edge JWTs).
    jwt_issuer: str = "kinwell-dev"
    jwt_audience: str = "kinwell"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    jwks_url: str | None = None
    jwks_json: str | None = None
    dev_token_issuer: bool = True
    max_token_bytes: int = 8192
    # The longest a token may live (exp - iat) and the one clock skew every time check allows.
    jwt_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    jwt_clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    # /docs, /redoc and /openapi.json: on by default in embedded mode, off in production.
    api_docs: bool | None = None

    # Platform secrets (see SECRET_FIELDS; which service holds which: shared.topology.SERVICE_SECRETS).
    pseudonym_key: SecretStr | None = None
    period_key: SecretStr | None = None
    # Root of the service's encrypted columns (data keys, directory): shared.crypto.Keyring.
    master_key: SecretStr | None = None
    master_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    # Retired master keys, still needed to open what they sealed until `kinwell keys rewrap` has
    # re-sealed it (KINWELL_OLD_MASTER_KEYS='{"k1": "..."}'); see docs/operations.md.
    old_master_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Root of the outbound webhook subscriptions' signing secrets (its own key: the aggregator
    # sends webhooks but must not hold the master key).
    webhook_key: SecretStr | None = None
    webhook_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    old_webhook_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Keys the managers' scopes (hris.org.manager_scope.v1): consent and the aggregator only, so the
    # aggregator can match a manager's token to units without the pseudonym key.
    manager_scope_key: SecretStr | None = None
    dev_jwt_secret: SecretStr | None = None
    # ES256 private key (PEM) that signs consent receipts; its public half is published as JWKS.
    receipt_signing_key: SecretStr | None = None
    # Wraps the per-subject event keys kept in the subject_keys bucket (shared.eventkeys): the
    # broker and its operators hold only wrapped keys. Needed by consent, checkin, recommender and
    # escalation (the services that seal or open event fields), never by the aggregator.
    event_key_kek: SecretStr | None = None
    # Keys this service's audit chain (shared.audit) with HMAC: whoever holds only the database
    # cannot recompute the chain. Give each service its own value in production.
    audit_key: SecretStr | None = None

    # Privacy parameters shared by producers and the aggregator.
    k_anonymity: int = Field(default=5, ge=3)

    # Embedded mode: fill missing secrets from <data_dir>/dev-secrets.json. `kinwell up` turns it
    # off for each service, whose environment then carries only that service's secrets.
    load_dev_secrets: bool = True

    # Telemetry.
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _check_mode(self) -> PlatformSettings:
        if self.api_docs is None:
            self.api_docs = self.mode != "production"
        problems = [p for name in _STRENGTH_CHECKED if (p := self._weakness(name)) is not None]
        for _, old_field in KEYRINGS.values():  # a retired key still opens data: same bar
            for kid, value in getattr(self, old_field).items():
                if len(value.get_secret_value()) < MIN_SECRET_BYTES:
                    problems.append(f"{old_field}[{kid}] is shorter than {MIN_SECRET_BYTES} characters")
        if self.mode == "production":
            if self.dev_token_issuer:
                problems.append("dev_token_issuer must be false")
            if any(alg.startswith("HS") for alg in self.jwt_algorithms):
                problems.append("production accepts only asymmetric JWT algorithms (RS256/ES256)")
            if not (self.jwks_url or self.jwks_json):
                problems.append("jwks_url or jwks_json is required")
            if problems:
                raise SettingsError("unsafe production settings: " + "; ".join(problems))
        elif self.load_dev_secrets:
            stored = load_or_create_dev_secrets(self.data_dir)
            given = set(self.model_fields_set)  # before filling: setattr adds to it
            for name in SECRET_FIELDS:
                if getattr(self, name) is None:
                    setattr(self, name, SecretStr(stored[name]))
            for secret, (id_field, old_field) in KEYRINGS.items():
                # A key rotated by `kinwell keys rotate` (embedded): its id and retired keys.
                # Retired keys are kept there as a JSON object in a string (the file maps str -> str).
                if secret not in given and id_field in stored:
                    setattr(self, id_field, stored[id_field])
                    retired = json.loads(stored.get(old_field, "{}"))
                    setattr(self, old_field, {kid: SecretStr(key) for kid, key in retired.items()})
        return self

    def _weakness(self, name: str) -> str | None:
        value: SecretStr | None = getattr(self, name)
        if value is None:
            return None
        if value.get_secret_value().lower() in _PLACEHOLDERS:
            return f"{name} is a placeholder"
        if len(value.get_secret_value()) < MIN_SECRET_BYTES:
            return f"{name} is shorter than {MIN_SECRET_BYTES} characters"
        return None

    def secret(self, name: str) -> bytes:
        """Raw bytes of a platform secret this process holds; :class:`SettingsError` otherwise."""
        value: SecretStr | None = getattr(self, name)
        if value is None:
            raise SettingsError(f"{name} is not held by this process")
        return value.get_secret_value().encode()

    def held_secrets(self) -> frozenset[str]:
        """The names of the platform secrets this process holds."""
        return frozenset(name for name in SECRET_FIELDS if getattr(self, name) is not None)

    def keyring(self, name: str) -> Keyring:
        """The keyring of a root secret (``master_key``, ``webhook_key``): current and retired keys."""
        id_field, old_field = KEYRINGS[name]
        keys = {kid: secret.get_secret_value().encode() for kid, secret in getattr(self, old_field).items()}
        keys[getattr(self, id_field)] = self.secret(name)
        return Keyring(getattr(self, id_field), keys)

    def restricted_to(self, service: str, held: tuple[str, ...]) -> PlatformSettings:
        """A copy holding only ``held`` (plus the embedded-only dev secrets in embedded mode).

        In production a held secret that is missing refuses to start.
        """
        keep = set(held) | (set(EMBEDDED_ONLY_SECRETS) if self.mode == "embedded" else set())
        if self.mode == "production":
            missing = [f"{name} is missing" for name in held if getattr(self, name) is None]
            if missing:
                raise SettingsError(f"{service}: unsafe production settings: " + "; ".join(missing))
        update: dict[str, object] = {name: None for name in SECRET_FIELDS if name not in keep}
        update |= {old: {} for ring, (_, old) in KEYRINGS.items() if ring not in keep}
        return self.model_copy(update=update)


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
    # The HTTP edge (see shared/server.py and docs/operations.md): metrics on their own listener,
    # never on the service port; bounded header/body reads and connections; abuse limits on writes.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no metrics listener
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_keepalive_timeout_seconds: float = Field(default=5.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)
    # Requests the app works on at once; beyond it, 503 busy at once (shared/ratelimit.py InFlightLimit).
    http_max_in_flight: int = Field(default=64, ge=1)
    # `limits` notation; writes (POST/PUT/PATCH/DELETE) per verified principal and per client address.
    # ("" turns one off; each replica counts on its own).
    rate_limit_per_principal: str = "20/second;600/minute"
    rate_limit_per_source: str = "500/second"
    # False where migrations run as their own step (docker-compose, the Kubernetes Job): the
    # service then refuses to start on a database that is not at the newest schema.
    migrate_on_start: bool = True
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if self.database_url is None:
            if self.platform.mode == "production":
                raise SettingsError(f"{self.service_name}: database_url is required in production")
            self.platform.data_dir.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite:///{self.platform.data_dir / (self.service_name + '.db')}"
        from shared.topology import SERVICE_SECRETS  # topology imports this module

        held = SERVICE_SECRETS.get(self.service_name)
        if held is not None:
            self.platform = self.platform.restricted_to(self.service_name, held)
        if self.nats_user is None:
            self.nats_user = self.service_name
        if self.nats_password is None:
            if self.platform.mode == "production" or not self.platform.load_dev_secrets:
                raise SettingsError(f"{self.service_name}: nats_password is required in production")
            stored = load_or_create_dev_secrets(self.platform.data_dir)
            self.nats_password = SecretStr(stored[f"nats_{self.service_name}_password"])
        return self


def nats_password_env(service: str) -> str:
    """Name of the environment variable the NATS permission file reads a service's password from."""
    return f"KINWELL_NATS_{service.upper()}_PASSWORD"
