"""Outbound webhooks signed per Standard Webhooks: one sender for every service that notifies.

Wiring a service (see docs/integrations.md)::

    webhooks = service_webhooks({"insight.released"})   # KINWELL_WEBHOOK_* from the environment
    ServiceSpec(..., routers=[webhooks.router],
                on_start=[webhooks.hooks.on_start], on_stop=[webhooks.hooks.on_stop])
    # the service's migration calls shared.migrations.create_webhook_tables()
    # in a service function, in the same transaction as the change it announces:
    enqueue(session, "insight.released", {"insight_id": ...})
"""

from shared.webhooks.config import DEFAULT_RETRY_SCHEDULE, WebhookSettings
from shared.webhooks.hooks import ServiceWebhooks, WebhookHooks, service_webhooks, webhook_sender_hooks
from shared.webhooks.models import (
    WEBHOOK_TABLES,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from shared.webhooks.queue import enqueue, envelope
from shared.webhooks.repository import TEST_EVENT, forget_subject, purge_settled
from shared.webhooks.router import webhooks_router
from shared.webhooks.secrets import SecretBox, generate_secret
from shared.webhooks.sender import WebhookSender, parse_retry_after
from shared.webhooks.ssrf import TargetPolicy, TargetRefused, system_resolver

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "WEBHOOK_TABLES",
    "DeliveryStatus",
    "TEST_EVENT",
    "SecretBox",
    "ServiceWebhooks",
    "TargetPolicy",
    "TargetRefused",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookHooks",
    "WebhookSender",
    "WebhookSettings",
    "WebhookSubscription",
    "enqueue",
    "envelope",
    "forget_subject",
    "generate_secret",
    "parse_retry_after",
    "purge_settled",
    "service_webhooks",
    "system_resolver",
    "webhook_sender_hooks",
    "webhooks_router",
]
