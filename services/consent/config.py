"""Settings of the consent service (env prefix ``KINWELL_CONSENT_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_CONSENT_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "consent"
    port: int = 8001
