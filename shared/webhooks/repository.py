"""Every query the webhook admin API makes (the sender's live in :mod:`shared.webhooks.queue`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_
from sqlmodel import Session, col, select

from shared.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)
from shared.webhooks.queue import _wake_after_commit, envelope
from shared.webhooks.secrets import SecretBox, generate_secret

REPLAYABLE = (DeliveryStatus.dead.value, DeliveryStatus.failed.value)
TEST_EVENT = "webhook.test"


def create_subscription(
    session: Session, box: SecretBox, url: str, event_types: Sequence[str], description: str | None
) -> tuple[WebhookSubscription, str]:
    """A new enabled subscription and its secret in clear (the only time it exists in clear)."""
    secret = generate_secret()
    sub = WebhookSubscription(
        url=url,
        event_types_json=json.dumps(sorted(set(event_types))),
        secret_ciphertext="",
        description=description,
    )
    sub.secret_ciphertext = box.encrypt(sub.id, secret)
    session.add(sub)
    session.flush()
    return sub, secret


def list_subscriptions(
    session: Session, *, after: tuple[datetime, str] | None = None, limit: int | None = None
) -> Sequence[WebhookSubscription]:
    """Oldest first (ties by id); after the (created_at, id) ``after`` when given."""
    created, sid = col(WebhookSubscription.created_at), col(WebhookSubscription.id)
    query = select(WebhookSubscription).order_by(created, sid)
    if after is not None:
        query = query.where(or_(created > after[0], and_(created == after[0], sid > after[1])))
    return session.exec(query.limit(limit)).all()


def _newest_first(query: Any, after: tuple[datetime, str] | None) -> Any:
    """Deliveries newest first (ties by id), older than the (created_at, id) ``after``."""
    created, did = col(WebhookDelivery.created_at), col(WebhookDelivery.id)
    if after is not None:
        query = query.where(or_(created < after[0], and_(created == after[0], did < after[1])))
    return query.order_by(created.desc(), did.desc())


def get_subscription(session: Session, subscription_id: str) -> WebhookSubscription | None:
    return session.get(WebhookSubscription, subscription_id)


def delete_subscription(session: Session, subscription_id: str) -> bool:
    """Delete a subscription with its deliveries and their log (explicitly: not every DB cascades)."""
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        return False
    deliveries = select(WebhookDelivery.id).where(col(WebhookDelivery.subscription_id) == subscription_id)
    session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(deliveries)))  # type: ignore[call-overload]
    session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription_id))  # type: ignore[call-overload]
    session.delete(sub)
    return True


def attempts_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    out: dict[str, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        rows = session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(delivery_ids))
            .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.attempt))
        ).all()
        for row in rows:
            out[row.delivery_id].append(row)
    return out


def list_deliveries(
    session: Session,
    subscription_id: str,
    *,
    status: str | None = None,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> Sequence[WebhookDelivery]:
    query = select(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription_id)
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status)
    return session.exec(_newest_first(query, after).limit(limit)).all()


def dead_letters(
    session: Session, *, limit: int = 50, after: tuple[datetime, str] | None = None
) -> Sequence[WebhookDelivery]:
    """Deliveries that were given up: dead after the last attempt, or failed early."""
    query = select(WebhookDelivery).where(col(WebhookDelivery.status).in_(REPLAYABLE))
    return session.exec(_newest_first(query, after).limit(limit)).all()


def get_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def replay(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a given-up delivery again, with the same message id, on a fresh retry schedule."""
    delivery.status = DeliveryStatus.pending.value
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.claim_token = None
    session.add(delivery)
    _wake_after_commit(session)
    return delivery


def purge_settled(session: Session, older_than: timedelta) -> int:
    """Delete delivered deliveries (and their log) settled before ``older_than`` ago; returns how many.

    Retention: payloads should not outlive their use. Dead and failed ones are kept for replay
    until their subscription is deleted.
    """
    cutoff = utcnow() - older_than
    old = select(WebhookDelivery.id).where(
        col(WebhookDelivery.status) == DeliveryStatus.delivered.value, col(WebhookDelivery.delivered_at) < cutoff
    )
    ids = list(session.exec(old).all())
    if ids:
        session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(ids)))  # type: ignore[call-overload]
        session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids)))  # type: ignore[call-overload]
    return len(ids)


def enqueue_test(session: Session, sub: WebhookSubscription) -> WebhookDelivery:
    """A signed ``webhook.test`` ping to one subscription, whatever event types it wants."""
    now = utcnow()
    body = envelope(TEST_EVENT, {"subscription_id": sub.id}, now)
    delivery = WebhookDelivery(subscription_id=sub.id, event_type=TEST_EVENT, payload=body, next_attempt_at=now)
    session.add(delivery)
    session.flush()
    _wake_after_commit(session)
    return delivery


def forget_subject(session: Session, subject: str) -> int:
    """Delete every delivery about ``subject`` (any status) and its log; returns how many.

    For withdrawal and erasure: what is still queued is never sent, and dead letters about the
    person cannot be replayed. An attempt already on the wire cannot be recalled; its outcome is
    dropped (it no longer owns a row).
    """
    ids = list(session.exec(select(WebhookDelivery.id).where(col(WebhookDelivery.subject) == subject)).all())
    if ids:
        session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(ids)))  # type: ignore[call-overload]
        session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids)))  # type: ignore[call-overload]
    return len(ids)
