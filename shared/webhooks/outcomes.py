"""Settling attempts: record each in the log and move its delivery on.

Delivered, retried later (on the schedule, no sooner than ``Retry-After``), failed early (410 Gone
disables the subscription; a refused target is never retried), or dead after the last attempt.
Successes, the common case, are written in three set-based statements per batch; the rest go
through the ORM one by one. Only the sender holding a delivery's claim token may settle it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.webhooks.config import WebhookSettings
from shared.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription, utcnow

OutcomeKind = Literal["delivered", "retry", "gone", "refused", "disabled"]


@dataclass(frozen=True)
class Outcome:
    """How one claimed delivery's attempt ended; ``attempt`` is its 1-based number."""

    delivery_id: str
    claim_token: str
    kind: OutcomeKind
    attempted_at: datetime
    attempt: int = 1
    duration_ms: float = 0.0
    status_code: int | None = None
    error_type: str | None = None
    retry_after: float | None = None


def settle(engine: Engine, outcomes: Sequence[Outcome], settings: WebhookSettings) -> None:
    """Record a batch of outcomes in one transaction."""
    if not outcomes:
        return
    now = utcnow()
    with Session(engine) as session:
        owned = _still_owned(session, outcomes)
        mine = [o for o in outcomes if (o.delivery_id, o.claim_token) in owned]
        _delivered(session, [o for o in mine if o.kind == "delivered"], now)
        rest = [o for o in mine if o.kind != "delivered"]
        if rest:
            rows = session.exec(
                select(WebhookDelivery).where(col(WebhookDelivery.id).in_([o.delivery_id for o in rest]))
            ).all()
            by_id = {d.id: d for d in rows}
            for outcome in rest:
                _apply(session, by_id[outcome.delivery_id], outcome, settings, now)
        session.commit()


def _still_owned(session: Session, outcomes: Sequence[Outcome]) -> set[tuple[str, str]]:
    """Deliveries still claimed by the token that attempted them (not deleted, not re-claimed)."""
    rows = session.exec(
        select(WebhookDelivery.id, WebhookDelivery.claim_token).where(
            col(WebhookDelivery.id).in_([o.delivery_id for o in outcomes])
        )
    ).all()
    return {(i, t) for i, t in rows if t is not None}


def _attempt_row(outcome: Outcome) -> dict[str, object]:
    return {
        "delivery_id": outcome.delivery_id,
        "attempt": outcome.attempt,
        "attempted_at": outcome.attempted_at,
        "status_code": outcome.status_code,
        "error_type": outcome.error_type,
        "duration_ms": round(outcome.duration_ms, 3),
    }


def _delivered(session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    if not outcomes:
        return
    session.execute(insert(WebhookAttempt), [_attempt_row(o) for o in outcomes])
    stmt = (
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == bindparam("b_id"), col(WebhookDelivery.claim_token) == bindparam("b_token"))
        .values(
            status=DeliveryStatus.delivered.value,
            attempts=bindparam("b_attempt"),
            delivered_at=now,
            last_status_code=bindparam("b_status"),
            last_error=None,
            claim_token=None,
        )
    )
    params = [
        {"b_id": o.delivery_id, "b_token": o.claim_token, "b_attempt": o.attempt, "b_status": o.status_code}
        for o in outcomes
    ]
    session.connection().execute(stmt, params)


def _apply(
    session: Session, delivery: WebhookDelivery, outcome: Outcome, settings: WebhookSettings, now: datetime
) -> None:
    delivery.claim_token = None
    if outcome.kind == "disabled":
        delivery.status, delivery.last_error = DeliveryStatus.failed.value, "subscription_disabled"
        return
    delivery.attempts = outcome.attempt
    delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error_type
    session.add(WebhookAttempt(**_attempt_row(outcome)))  # type: ignore[arg-type]
    if outcome.kind == "refused":
        # Never retried: repeated attempts would keep probing an address we must not reach.
        delivery.status = DeliveryStatus.failed.value
    elif outcome.kind == "gone":
        delivery.status = DeliveryStatus.failed.value
        disable_subscription(session, delivery.subscription_id, "gone")
    elif delivery.attempts >= settings.max_attempts:
        delivery.status = DeliveryStatus.dead.value
    else:
        wait = settings.delay_after(delivery.attempts)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, settings.max_retry_after_seconds))
        delivery.next_attempt_at = now + timedelta(seconds=wait)


def disable_subscription(session: Session, subscription_id: str, reason: str) -> None:
    """Stop sending to a subscription: it is disabled and its pending, unclaimed deliveries fail."""
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        return
    sub.enabled, sub.disabled_reason = False, reason
    session.add(sub)
    session.exec(  # type: ignore[call-overload]
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.subscription_id) == subscription_id,
            col(WebhookDelivery.status) == DeliveryStatus.pending.value,
            col(WebhookDelivery.claim_token).is_(None),
        )
        .values(status=DeliveryStatus.failed.value, last_error="subscription_disabled")
    )
