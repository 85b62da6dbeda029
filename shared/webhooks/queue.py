"""The delivery queue: rows written in the caller's transaction, claimed under a lease, settled.

Like the event outbox (:mod:`shared.bus.outbox`), :func:`enqueue` only adds rows to the caller's
session: a rolled-back change sends nothing, a committed one is sent at least once. Senders claim
due rows by stamping them with a claim token and pushing ``next_attempt_at`` one lease ahead, in a
single conditional UPDATE, so several replicas never take the same row, and a row whose sender died
mid-attempt becomes due again when the lease runs out. Settling attempts is in
:mod:`shared.webhooks.outcomes`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.db import after_commit
from shared.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)

EVENT_TYPE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024

# Senders by engine, so a commit that enqueued deliveries wakes the sender of that database.
_WAKERS: dict[int, Callable[[], None]] = {}


def register_waker(engine: Engine, wake: Callable[[], None]) -> None:
    _WAKERS[id(engine)] = wake


def unregister_waker(engine: Engine, wake: Callable[[], None]) -> None:
    if _WAKERS.get(id(engine)) == wake:  # another sender on the same engine keeps its own
        _WAKERS.pop(id(engine), None)


def _wake_after_commit(session: Session) -> None:
    wake = _WAKERS.get(id(session.get_bind()))
    if wake is not None:
        after_commit(session, wake)


def envelope(event_type: str, payload: dict[str, Any], occurred_at: datetime) -> str:
    """The body every receiver gets: ``{"type", "timestamp", "data"}`` (the Standard Webhooks shape)."""
    stamp = occurred_at.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
    body = {"type": event_type, "timestamp": stamp, "data": payload}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def enqueue(
    session: Session,
    event_type: str,
    payload: dict[str, Any],
    *,
    subject: str | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> list[str]:
    """Queue ``payload`` for every enabled subscription to ``event_type``, in the caller's transaction.

    Returns the message ids (one per subscription). Nothing is sent unless the session commits.
    ValueError for a malformed event type, a payload that is not JSON, or one over the size limit.

    ``subject`` (a pseudonym) marks a delivery about one person: it is stored beside the delivery,
    never sent, so that withdrawal or erasure can delete it (``repository.forget_subject``); and such
    a delivery goes only to subscriptions that name ``event_type`` explicitly, never to ``*``.
    """
    if len(event_type) > 120 or not _EVENT_TYPE.fullmatch(event_type):
        raise ValueError("event_type must be dotted lower-case words")
    now = utcnow()
    try:
        body = envelope(event_type, payload, now)
    except (TypeError, ValueError) as exc:
        raise ValueError("payload must be JSON-serialisable") from exc
    if len(body.encode()) > max_payload_bytes:
        raise ValueError("payload is too large")
    subscriptions = session.exec(select(WebhookSubscription).where(col(WebhookSubscription.enabled).is_(True))).all()
    ids = []
    for sub in subscriptions:
        if sub.wants(event_type) if subject is None else event_type in sub.event_types:
            delivery = WebhookDelivery(
                subscription_id=sub.id, event_type=event_type, payload=body, subject=subject, next_attempt_at=now
            )
            session.add(delivery)
            ids.append(delivery.id)
    if ids:
        _wake_after_commit(session)
    return ids


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, with what the attempt needs from its subscription."""

    id: str
    claim_token: str
    subscription_id: str
    url: str
    secret_ciphertext: str
    enabled: bool
    event_type: str
    payload: str
    attempts: int


def claim_due(engine: Engine, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for this sender."""
    now = utcnow()
    token = uuid.uuid4().hex
    due = (col(WebhookDelivery.status) == DeliveryStatus.pending.value) & (col(WebhookDelivery.next_attempt_at) <= now)
    with Session(engine) as session:
        ids = session.exec(
            select(WebhookDelivery.id).where(due).order_by(col(WebhookDelivery.next_attempt_at)).limit(limit)
        ).all()
        if not ids:
            return []
        # The WHERE is evaluated again under the row lock: a row another sender claimed meanwhile
        # no longer matches (its next_attempt_at moved a lease ahead), so it is not taken twice.
        session.exec(  # type: ignore[call-overload]
            update(WebhookDelivery)
            .where(col(WebhookDelivery.id).in_(ids), due)
            .values(claim_token=token, next_attempt_at=now + timedelta(seconds=lease_seconds))
        )
        rows = session.exec(
            select(WebhookDelivery, WebhookSubscription)
            .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
            .where(col(WebhookDelivery.claim_token) == token)
        ).all()
        claimed = [
            Claimed(
                id=d.id,
                claim_token=token,
                subscription_id=s.id,
                url=s.url,
                secret_ciphertext=s.secret_ciphertext,
                enabled=s.enabled,
                event_type=d.event_type,
                payload=d.payload,
                attempts=d.attempts,
            )
            for d, s in rows
        ]
        session.commit()
    return claimed


def seconds_until_next_due(engine: Engine) -> float | None:
    """How long until the earliest pending delivery is due (None when nothing is pending)."""
    with Session(engine) as session:
        earliest = session.exec(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                col(WebhookDelivery.status) == DeliveryStatus.pending.value
            )
        ).one()
    if earliest is None:
        return None
    return max(0.0, (earliest - utcnow()).total_seconds())
