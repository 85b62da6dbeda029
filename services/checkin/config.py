"""Settings of the checkin service (env prefix ``KINWELL_CHECKIN_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CheckinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_CHECKIN_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "checkin"
    port: int = 8002
