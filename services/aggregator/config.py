"""Settings of the aggregator service (env prefix ``KINWELL_AGGREGATOR_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AggregatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_AGGREGATOR_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "aggregator"
    port: int = 8004
