"""Settings of the escalation service (env prefix ``KINWELL_ESCALATION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookSettings

# The policy used until an admin PUTs one: page every counsellor, wait 5 min (imminent), 30 min
# (high) or 4 h (moderate) for an acknowledgement, page them again, then stop.
DEFAULT_POLICY = {
    "rules": [
        {
            "targets": [{"group": "counsellors"}],
            "ack_delay_seconds": {"imminent": 300, "high": 1800, "moderate": 14400},
        }
    ],
    "loops": 2,
    "crisis_service": False,
    "contact_timeout_seconds": {"imminent": 1800, "high": 14400, "moderate": 172800},
}


class EscalationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_ESCALATION_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "escalation"
    port: int = 8005
    # Outbound webhooks: KINWELL_WEBHOOK_* (shared by every sending service), read at start-up.
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    timer_poll_seconds: float = Field(default=1.0, gt=0, le=60, description="How often due ladder timers are fired.")
    timer_batch: int = Field(default=100, ge=1, le=10_000)
    console_url: str = Field(
        default="https://console.kinwell.example/cases/",
        max_length=500,
        description="Pages link to <console_url><case id>; the console asks for a counsellor's login.",
    )
    legal_hold_days: float = Field(
        default=0,
        ge=0,
        le=3650,
        description="Keep a case this many days after it closes despite an erasure request (0: no hold).",
    )
    contact_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Deadline of a contact request.")
    sla_release_seconds: float = Field(
        default=3600, gt=0, description="SLA contributions are released in shuffled batches at this interval."
    )
    default_policy: dict = Field(default_factory=lambda: dict(DEFAULT_POLICY))  # type: ignore[type-arg]
