"""Settings of the consent service (env prefix ``KINWELL_CONSENT_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_CONSENT_", extra="ignore", hide_input_in_errors=True)

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

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
