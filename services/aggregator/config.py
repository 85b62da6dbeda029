"""Settings of the aggregator service (env prefix ``KINWELL_AGGREGATOR_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookSettings


class AggregatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_AGGREGATOR_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "aggregator"
    port: int = 8004
    # Outbound webhooks: KINWELL_WEBHOOK_* (shared by every sending service), read at start-up.
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
