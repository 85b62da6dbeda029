"""Start and stop a :class:`WebhookSender` with a service (``ServiceSpec.on_start`` / ``on_stop``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.webhooks.config import WebhookSettings
from shared.webhooks.secrets import SecretBox
from shared.webhooks.sender import WebhookSender
from shared.webhooks.ssrf import Resolver

if TYPE_CHECKING:
    from shared.app import Runtime

SENDER_KEY = "webhook_sender"


@dataclass(frozen=True)
class WebhookHooks:
    """Append ``on_start`` to ``ServiceSpec.on_start`` and ``on_stop`` to ``ServiceSpec.on_stop``."""

    on_start: Callable[[Runtime], Awaitable[None]]
    on_stop: Callable[[Runtime], Awaitable[None]]


def webhook_sender_hooks(settings: WebhookSettings | None = None, *, resolver: Resolver | None = None) -> WebhookHooks:
    """Hooks that run a sender on the service's engine; it is kept in ``rt.extras["webhook_sender"]``."""

    async def on_start(rt: Runtime) -> None:
        if SENDER_KEY in rt.extras:  # idempotent: two senders in one process would only compete
            return
        sender = WebhookSender(rt.engine, SecretBox.from_platform(rt.settings.platform), settings, resolver=resolver)
        sender.start()
        rt.extras[SENDER_KEY] = sender

    async def on_stop(rt: Runtime) -> None:
        sender: WebhookSender | None = rt.extras.pop(SENDER_KEY, None)
        if sender is not None:
            await sender.stop()

    return WebhookHooks(on_start, on_stop)
