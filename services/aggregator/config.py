"""Settings of the aggregator service (env prefix ``KINWELL_AGGREGATOR_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.release.rules import ReleaseRules
from shared.settings import ServiceSettings, SettingsError
from shared.webhooks import WebhookSettings


class AggregatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="KINWELL_AGGREGATOR_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    service_name: str = "aggregator"
    port: int = 8004
    # Outbound webhooks: KINWELL_WEBHOOK_* (shared by every sending service), read at start-up.
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    # Release rules: KINWELL_AGGREGATOR_RELEASE__K=5, __MANAGER_K, __RHO_COUNT, __RHO_SUM, __RHO_CAP.
    release: ReleaseRules = Field(default_factory=ReleaseRules)
    # A week is released this long after its Sunday ends (late check-ins arrive meanwhile).
    grace_hours: float = Field(default=48.0, ge=0, le=24 * 14)
    release_check_seconds: float = Field(default=300.0, gt=0)
    # Forecasts before announced triggers are reassessed this often (new releases, scoring).
    forecast_check_seconds: float = Field(default=300.0, gt=0)
    # Embedded mode only (``kinwell demo`` backdates weeks); refused in production.
    clock_offset_days: int = Field(default=0, ge=-3660, le=3660)
    playbook_path: Path | None = None

    @model_validator(mode="after")
    def _no_clock_in_production(self) -> AggregatorSettings:
        if self.platform.mode == "production" and self.clock_offset_days != 0:
            raise SettingsError("clock_offset_days exists only in embedded mode")
        return self
