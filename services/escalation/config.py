"""Settings of the escalation service (env prefix ``KINWELL_ESCALATION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookSettings


class EscalationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_ESCALATION_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "escalation"
    port: int = 8005
    # Outbound webhooks: KINWELL_WEBHOOK_* (shared by every sending service), read at start-up.
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
