"""Settings of the outbound webhook sender (env prefix ``KINWELL_WEBHOOK_``).

Kept apart from :class:`shared.settings.PlatformSettings` so that only the services that send
webhooks read them. Every service that mounts :func:`shared.webhooks.webhooks_router` and starts a
:class:`shared.webhooks.WebhookSender` passes the same instance to both (or lets each read the
environment), so the SSRF rules at subscription time and at send time are the same.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Attempt times as offsets from the first attempt, in seconds: immediately, 5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 14 h, 20 h, 24 h. Ten attempts spread over about a day, as Standard Webhooks
# senders (Svix) do: quick retries catch blips, the long tail covers a receiver's outage.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class WebhookSettings(BaseSettings):
    """How webhooks are sent and which targets they may reach."""

    model_config = SettingsConfigDict(env_prefix="KINWELL_WEBHOOK_", extra="ignore", hide_input_in_errors=True)

    retry_schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        min_length=1,
        max_length=50,
        description="Attempt times in seconds after the first attempt (first entry 0, increasing).",
    )
    require_https: bool = Field(default=True, description="Refuse http:// targets (tests and local dev turn it off).")
    allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs a target may resolve into although they are not public (e.g. 127.0.0.0/8 in tests).",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Host names whose addresses are accepted even if private (an internal receiver you run).",
    )
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    timeout_seconds: float = Field(default=15.0, gt=0, le=120, description="Whole attempt, connect to last byte.")
    concurrency: int = Field(default=32, ge=1, le=1024)
    batch_size: int = Field(default=128, ge=1, le=2048)
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    max_retry_after_seconds: float = Field(default=86400.0, ge=0)
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    user_agent: str = "Kinwell-Webhooks/1"
    retention_days: float = Field(default=7.0, gt=0, description="Delivered rows (and their log) are kept this long.")
    purge_interval_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("retry_schedule")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if value[0] != 0 or any(b < a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("retry_schedule must start at 0 and never decrease")
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)  # ValueError on a typo: fail at start-up
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in value if h.strip()]

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule)

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt before the next one."""
        return float(self.retry_schedule[attempts] - self.retry_schedule[attempts - 1])

    @property
    def lease_seconds(self) -> float:
        """How long a claimed delivery stays invisible to other senders (crash recovery after that)."""
        return self.timeout_seconds * 2 + 30.0
