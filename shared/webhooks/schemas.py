"""Request and response bodies of the webhook admin API. Secrets appear only in ``SubscriptionCreated``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.webhooks.queue import EVENT_TYPE_PATTERN


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands back what was stored; make the offset explicit on the wire.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
EventType = Annotated[str, Field(max_length=120, pattern=EVENT_TYPE_PATTERN + r"|^\*$")]


class SubscriptionCreate(BaseModel):
    """A receiver to register: its URL and the event types it wants (``*`` for every type)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="https URL of the receiver (no user info, no fragment).")
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=200)


class SubscriptionRead(BaseModel):
    """A subscription as admins see it: never its secret."""

    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: UtcDatetime


class SubscriptionCreated(SubscriptionRead):
    """The new subscription and its signing secret: shown this once, store it now."""

    secret: str = Field(description="Standard Webhooks secret (whsec_...); it cannot be read again.")


class AttemptRead(BaseModel):
    attempt: int
    attempted_at: UtcDatetime
    status_code: int | None
    error_type: str | None
    duration_ms: float


class DeliveryRead(BaseModel):
    """A delivery's state (never its payload, which may carry data only the receiver should see)."""

    id: str = Field(description="The webhook-id header value, the same on every attempt.")
    subscription_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: UtcDatetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    attempt_log: list[AttemptRead] = Field(default_factory=list)
