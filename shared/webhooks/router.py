"""``webhooks_router``: the admin API of a service's outbound webhooks (problem+json on every error).

Mounted through ``ServiceSpec.routers``. It reads the platform master key (to encrypt secrets) from
``app.state.settings``, which :func:`shared.app.create_service_app` sets, unless a
:class:`~shared.webhooks.secrets.SecretBox` is put on ``app.state.webhook_box``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response

from shared.auth import AdminPrincipal
from shared.db import SessionDep
from shared.errors import Conflict, NotFound, Unprocessable
from shared.pagination import PageQuery, after_time, next_link, time_key
from shared.pagination import page as paged
from shared.webhooks import repository as repo
from shared.webhooks.config import WebhookSettings
from shared.webhooks.models import WebhookDelivery, WebhookSubscription
from shared.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionRead,
)
from shared.webhooks.secrets import SecretBox
from shared.webhooks.ssrf import Resolver, TargetPolicy, TargetRefused

log = logging.getLogger("kinwell.webhooks")

StatusFilter = Literal["pending", "delivered", "failed", "dead"]


def _box(request: Request) -> SecretBox:
    box: SecretBox | None = getattr(request.app.state, "webhook_box", None)
    if box is None:
        box = SecretBox.from_platform(request.app.state.settings.platform)
        request.app.state.webhook_box = box
    return box


BoxDep = Annotated[SecretBox, Depends(_box)]


def _read(sub: WebhookSubscription) -> SubscriptionRead:
    return SubscriptionRead(
        id=sub.id,
        url=sub.url,
        event_types=sub.event_types,
        description=sub.description,
        enabled=sub.enabled,
        disabled_reason=sub.disabled_reason,
        created_at=sub.created_at,
    )


def _delivery(d: WebhookDelivery, attempts: list[AttemptRead] | None = None) -> DeliveryRead:
    return DeliveryRead(
        id=d.id,
        subscription_id=d.subscription_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        attempt_log=attempts or [],
    )


def webhooks_router(
    prefix: str = "/v1/subscriptions",
    *,
    dead_letters_prefix: str = "/v1/webhooks",
    settings: WebhookSettings | None = None,
    event_types: Collection[str] | None = None,
    resolver: Resolver | None = None,
) -> APIRouter:
    """Subscriptions CRUD, per-subscription delivery log, dead letters and their replay (admins only).

    ``event_types`` restricts what may be subscribed to (the types this service sends); ``settings``
    and ``resolver`` must match the sender's so that create-time and send-time checks agree.
    """
    policy = TargetPolicy.from_settings(settings or WebhookSettings(), resolver)
    known = frozenset(event_types) if event_types is not None else None
    router = APIRouter(tags=["webhooks"])

    @router.post(prefix, status_code=201, summary="Create a webhook subscription")
    def create_subscription(
        body: SubscriptionCreate, session: SessionDep, box: BoxDep, _: AdminPrincipal, response: Response
    ) -> SubscriptionCreated:
        """Register a receiver. The answer carries its signing secret: this once, never again."""
        if known is not None and any(t != "*" and t not in known for t in body.event_types):
            raise Unprocessable("An event type is not one this service sends.", code="unknown-event-type")
        try:
            url = policy.check_url(body.url)
        except TargetRefused as exc:
            raise Unprocessable(
                "The target URL is not allowed: it must be public https without user info.",
                code="webhook-target-refused",
                reason=exc.reason,
            ) from None
        sub, secret = repo.create_subscription(session, box, url, body.event_types, body.description)
        response.headers["Cache-Control"] = "no-store"
        log.info("webhook subscription created", extra={"outcome": "created"})
        return SubscriptionCreated(**_read(sub).model_dump(), secret=secret)

    @router.get(prefix, summary="List webhook subscriptions")
    def list_subscriptions(
        request: Request, response: Response, session: SessionDep, _: AdminPrincipal, page: PageQuery
    ) -> list[SubscriptionRead]:
        """Subscriptions, oldest first (secrets are never shown); the next page's URL is in the
        ``Link`` header (``rel="next"``)."""
        rows = repo.list_subscriptions(session, after=after_time(page), limit=page.limit + 1)
        subs, cursor = paged(rows, page, time_key)
        response.headers.update(next_link(request.url, cursor))
        return [_read(s) for s in subs]

    @router.get(prefix + "/{subscription_id}", summary="Read a webhook subscription")
    def get_subscription(subscription_id: str, session: SessionDep, _: AdminPrincipal) -> SubscriptionRead:
        sub = repo.get_subscription(session, subscription_id)
        if sub is None:
            raise NotFound("No such subscription.")
        return _read(sub)

    @router.delete(prefix + "/{subscription_id}", status_code=204, summary="Delete a webhook subscription")
    def delete_subscription(subscription_id: str, session: SessionDep, _: AdminPrincipal) -> Response:
        """Delete it with its queued deliveries and their log."""
        if not repo.delete_subscription(session, subscription_id):
            raise NotFound("No such subscription.")
        return Response(status_code=204)

    @router.post(prefix + "/{subscription_id}/test", status_code=202, summary="Send a test ping")
    def test_subscription(subscription_id: str, session: SessionDep, _: AdminPrincipal) -> DeliveryRead:
        """Queue a signed ``webhook.test`` message (``{"subscription_id"}``) to this receiver only.

        It goes through the same queue, retries and delivery log as real events, so the log shows
        whether the receiver is reachable and verifies signatures.
        """
        sub = repo.get_subscription(session, subscription_id)
        if sub is None:
            raise NotFound("No such subscription.")
        if not sub.enabled:
            raise Conflict("The subscription is disabled; create a new one.", code="subscription-disabled")
        return _delivery(repo.enqueue_test(session, sub))

    @router.get(prefix + "/{subscription_id}/deliveries", summary="Delivery log of a subscription")
    def list_deliveries(
        subscription_id: str,
        request: Request,
        response: Response,
        session: SessionDep,
        _: AdminPrincipal,
        page: PageQuery,
        status: StatusFilter | None = None,
    ) -> list[DeliveryRead]:
        """Newest first, each with its attempts (time, status code or error type, duration); the
        next page's URL is in the ``Link`` header."""
        if repo.get_subscription(session, subscription_id) is None:
            raise NotFound("No such subscription.")
        fetched = repo.list_deliveries(
            session, subscription_id, status=status, limit=page.limit + 1, after=after_time(page)
        )
        rows, cursor = paged(fetched, page, time_key)
        response.headers.update(next_link(request.url, cursor))
        log_by_id = repo.attempts_of(session, [d.id for d in rows])
        return [
            _delivery(d, [AttemptRead.model_validate(a, from_attributes=True) for a in log_by_id[d.id]]) for d in rows
        ]

    @router.get(dead_letters_prefix + "/dead-letters", summary="Deliveries that were given up")
    def list_dead_letters(
        request: Request, response: Response, session: SessionDep, _: AdminPrincipal, page: PageQuery
    ) -> list[DeliveryRead]:
        """Dead after the last attempt, or failed early (410 Gone, target refused); newest first;
        the next page's URL is in the ``Link`` header."""
        rows, cursor = paged(repo.dead_letters(session, limit=page.limit + 1, after=after_time(page)), page, time_key)
        response.headers.update(next_link(request.url, cursor))
        return [_delivery(d) for d in rows]

    @router.post(
        dead_letters_prefix + "/dead-letters/{delivery_id}/replay", status_code=202, summary="Replay a dead letter"
    )
    def replay_dead_letter(delivery_id: str, session: SessionDep, _: AdminPrincipal) -> DeliveryRead:
        """Send it again with the same webhook-id (receivers de-duplicate) on a fresh retry schedule."""
        delivery = repo.get_delivery(session, delivery_id)
        if delivery is None or delivery.status not in repo.REPLAYABLE:
            raise NotFound("No such dead letter.")
        sub = repo.get_subscription(session, delivery.subscription_id)
        if sub is None or not sub.enabled:
            raise Conflict("The subscription is disabled; create a new one.", code="subscription-disabled")
        return _delivery(repo.replay(session, delivery))

    return router
