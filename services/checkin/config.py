"""Settings of the checkin service (env prefix ``KINWELL_CHECKIN_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookSettings


class CheckinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_CHECKIN_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "checkin"
    port: int = 8002

    # Raw check-ins (and their trend cache) older than this are deleted by a scheduled task.
    retention_days: int = Field(default=180, ge=1, le=3650)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    # How often due nudges are looked for; a nudge more than grace_hours late is skipped, not sent.
    nudge_interval_seconds: float = Field(default=30.0, gt=0)
    nudge_grace_hours: float = Field(default=12.0, gt=0)
    # Contributions are released in shuffled batches at this interval, so that their publication
    # time says nothing finer about when anyone checked in.
    contribution_release_seconds: float = Field(default=3600.0, gt=0)
    trend_weeks: int = Field(default=6, ge=1, le=8)
    writer_max_batch: int = Field(default=128, ge=1, le=1024)
    # How long the check-in writer waits for more requests to join a batch (0 = no wait).
    writer_linger_ms: float = Field(default=2.0, ge=0, le=50)
    # Work-pattern signals: an ISO week closes (is reduced to contributions, and later records for
    # it are dropped) this many hours after it ends (Monday 00:00 UTC), for late daily uploads.
    signals_close_hours: float = Field(default=36.0, ge=0, le=168)
    signals_max_body_bytes: int = Field(default=512 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Outbound webhooks (nudges): KINWELL_WEBHOOK_* (shared by every sending service), read at start-up.
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
