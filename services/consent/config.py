"""Settings of the consent service (env prefix ``KINWELL_CONSENT_``)."""

from __future__ import annotations

import base64
import binascii

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.release.rules import ReleaseRules
from shared.settings import ServiceSettings, SettingsError, load_or_create_dev_secrets

# Standard Webhooks secrets: "whsec_" + base64 of 24 to 64 random bytes.
_WHSEC_MIN_BYTES = 24


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="KINWELL_CONSENT_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    service_name: str = "consent"
    port: int = 8001

    # The data controller named in every consent receipt and in the public policy.
    controller_name: str = Field(default="Kinwell platform operator", min_length=1, max_length=200)
    controller_contact: str = Field(default="privacy@kinwell.invalid", min_length=1, max_length=200)
    jurisdiction: str = Field(default="EU", min_length=2, max_length=32)
    # Absolute base URL the service is reached at (policy and JWKS links inside receipts).
    public_url: str | None = None

    # Data-subject requests: how long an export / access-log waits for the other services.
    subject_request_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    # Erasure requests still missing acknowledgements are re-published after this long ...
    erasure_retry_after_seconds: float = Field(default=300.0, gt=0)
    # ... checked this often.
    erasure_retry_check_seconds: float = Field(default=30.0, gt=0)

    # Inbound HRIS webhooks: every secret that may sign (several while one is rotated), as a JSON
    # list, e.g. KINWELL_CONSENT_HRIS_WEBHOOK_SECRETS='["whsec_new...", "whsec_old..."]'.
    hris_webhook_secrets: list[SecretStr] = Field(default_factory=list, max_length=8)
    # Processed webhook ids are kept this long (a retry or replay within it answers 2xx and changes nothing).
    hris_webhook_id_retention_days: int = Field(default=30, ge=1, le=3650)
    # Events accepted by one ``POST /v1/hris/import`` call (the CLI sends bounded batches).
    hris_import_max_events: int = Field(default=1000, ge=1, le=10000)
    # Consent changes committed together at most (1: a commit per change; bench_consent compares).
    writer_max_batch: int = Field(default=64, ge=1, le=1024)
    # Consent statistics' noise budget (KINWELL_CONSENT_STATS_RELEASE__RHO_COUNT, __RHO_CAP); their
    # k is the platform's k_anonymity (docs/aggregator.md).
    stats_release: ReleaseRules = Field(default_factory=ReleaseRules)

    @model_validator(mode="after")
    def _hris_secrets(self) -> ConsentSettings:
        if not self.hris_webhook_secrets:
            if self.platform.mode == "production" or not self.platform.load_dev_secrets:
                raise SettingsError("consent: hris_webhook_secrets is required in production")
            stored = load_or_create_dev_secrets(self.platform.data_dir)
            self.hris_webhook_secrets = [SecretStr(stored["hris_webhook_secret"])]
        for secret in self.hris_webhook_secrets:
            value = secret.get_secret_value()
            try:
                raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError("consent: an hris_webhook_secrets entry is not whsec_<base64>") from None
            if len(raw) < _WHSEC_MIN_BYTES:
                raise SettingsError(f"consent: hris_webhook_secrets need at least {_WHSEC_MIN_BYTES} random bytes")
        return self

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
