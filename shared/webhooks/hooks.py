"""Mount outbound webhooks in a service: the admin router, and a sender started and stopped with it.

``service_webhooks(event_types)`` gives everything a :class:`shared.app.ServiceSpec` needs: its
``router`` (admin API), and ``on_start`` / ``on_stop`` hooks that run a :class:`WebhookSender` on the
service's engine (kept in ``rt.webhook_sender``) and purge delivered rows past retention.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlmodel import Session

from shared.periodic import every
from shared.webhooks.config import WebhookSettings
from shared.webhooks.repository import purge_settled
from shared.webhooks.router import webhooks_router
from shared.webhooks.secrets import SecretBox
from shared.webhooks.sender import WebhookSender
from shared.webhooks.ssrf import Resolver

if TYPE_CHECKING:
    from shared.app import Runtime

log = logging.getLogger("kinwell.webhooks")


@dataclass(frozen=True)
class WebhookHooks:
    """Append ``on_start`` to ``ServiceSpec.on_start`` and ``on_stop`` to ``ServiceSpec.on_stop``."""

    on_start: Callable[[Runtime], Awaitable[None]]
    on_stop: Callable[[Runtime], Awaitable[None]]


def _purge_once(rt: Runtime, keep: timedelta) -> int:
    with Session(rt.engine) as session:
        removed = purge_settled(session, keep)
        session.commit()
    return removed


def webhook_sender_hooks(settings: WebhookSettings | None = None, *, resolver: Resolver | None = None) -> WebhookHooks:
    """Hooks that run a sender (and the retention purge) on the service's engine."""
    settings = settings or WebhookSettings()

    async def on_start(rt: Runtime) -> None:
        if rt.webhook_sender is not None:  # idempotent: two senders in one process would only compete
            return
        sender = WebhookSender(rt.engine, SecretBox.from_platform(rt.settings.platform), settings, resolver=resolver)
        sender.start()
        rt.webhook_sender = sender
        keep = timedelta(days=settings.retention_days)
        rt.webhook_purge = every(settings.purge_interval_seconds, lambda: _purge_once(rt, keep), name="webhook-purge")

    async def on_stop(rt: Runtime) -> None:
        purge, rt.webhook_purge = rt.webhook_purge, None
        if purge is not None:
            purge.cancel()
        sender, rt.webhook_sender = rt.webhook_sender, None
        if sender is not None:
            await sender.stop()

    return WebhookHooks(on_start, on_stop)


@dataclass(frozen=True)
class ServiceWebhooks:
    """One service's outbound webhooks: the event types it sends, its admin router, its sender hooks."""

    event_types: frozenset[str]
    settings: WebhookSettings
    router: APIRouter
    hooks: WebhookHooks


def service_webhooks(
    event_types: Collection[str], settings: WebhookSettings | None = None, *, resolver: Resolver | None = None
) -> ServiceWebhooks:
    """Build the router and hooks with one set of settings, so create-time and send-time SSRF checks agree.

    ``settings`` defaults to ``WebhookSettings()``: the ``KINWELL_WEBHOOK_*`` environment, read now.
    """
    settings = settings or WebhookSettings()
    types = frozenset(event_types)
    router = webhooks_router(settings=settings, event_types=types, resolver=resolver)
    return ServiceWebhooks(types, settings, router, webhook_sender_hooks(settings, resolver=resolver))
