"""Tables of the outbound webhook sender: subscriptions, the delivery queue, and its attempt log.

Their schema is created by :func:`shared.migrations.create_webhook_tables`, which a service's own
migration calls; the two must stay in step (``tests/integrations`` compares them). Times are aware
UTC (SQLModel's ``UTCDateTime``: ``timestamptz`` on PostgreSQL, UTC text on SQLite).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_subscription_id() -> str:
    return f"sub_{uuid.uuid4().hex}"


def new_message_id() -> str:
    """A Standard Webhooks message id; stays the same across retries so receivers can de-duplicate."""
    return f"msg_{uuid.uuid4().hex}"


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its next attempt (or being attempted under a lease)
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # given up early: 410 Gone, subscription disabled, or target refused (SSRF)
    dead = "dead"  # every scheduled attempt failed: a dead letter an admin can replay


class WebhookSubscription(SQLModel, table=True):
    """A receiver of webhooks: its URL, the event types it wants, and its signing secret (encrypted)."""

    __tablename__ = "webhook_subscription"

    id: str = Field(default_factory=new_subscription_id, primary_key=True, max_length=40)
    url: str = Field(max_length=2048)
    event_types_json: str = Field(sa_column=Column("event_types", Text, nullable=False))
    secret_ciphertext: str = Field(max_length=512)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def event_types(self) -> list[str]:
        return list(json.loads(self.event_types_json))

    def wants(self, event_type: str) -> bool:
        types = self.event_types
        return "*" in types or event_type in types


class WebhookDelivery(SQLModel, table=True):
    """One message to one subscription; ``id`` is the ``webhook-id`` header."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: str = Field(default_factory=new_message_id, primary_key=True, max_length=40)
    subscription_id: str = Field(
        sa_column=Column(
            String(40), ForeignKey("webhook_subscription.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    event_type: str = Field(max_length=120)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    # The data subject (pseudonym) a delivery concerns, if any: withdrawal or erasure deletes its
    # deliveries (``repository.forget_subject``). Never sent; the payload carries its own handle.
    subject: str | None = Field(default=None, max_length=128, index=True)
    attempts: int = 0
    status: str = Field(default=DeliveryStatus.pending.value, max_length=16)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claim_token: str | None = Field(default=None, max_length=40)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt: when, how it ended (status code or error type), how long it took."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(
        sa_column=Column(String(40), ForeignKey("webhook_delivery.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    attempt: int
    attempted_at: datetime
    status_code: int | None = None
    error_type: str | None = Field(default=None, max_length=64)
    duration_ms: float


WEBHOOK_TABLES = (WebhookSubscription.__table__, WebhookDelivery.__table__, WebhookAttempt.__table__)  # type: ignore[attr-defined]
