"""Assembly of the escalation service.

Until its own issue lands it serves health, readiness and metrics, the admin API of its outbound
webhooks (``/v1/subscriptions``, with a sender started beside the bus), answers data-subject export
and access-log requests with what it holds (nothing yet), and acknowledges erasure requests, which
also delete any queued page about the subject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.escalation.config import EscalationSettings
from services.escalation.notify import EVENT_TYPES
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.service_kit import erasure_binding
from shared.webhooks import WebhookSettings, forget_subject, service_webhooks

NAME = "escalation"


def _erase(session: Session, pseudonym: str) -> int:
    return forget_subject(session, pseudonym)  # pages still queued about them (nothing else held yet)


def _export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {}


def build_spec(webhook_settings: WebhookSettings | None = None) -> ServiceSpec:
    webhooks = service_webhooks(EVENT_TYPES, webhook_settings)
    return ServiceSpec(
        name=NAME,
        title="Kinwell escalation",
        description="Crisis cases, human review, on-call rosters and timed escalation.",
        migrations=Path(__file__).parent / "migrations",
        routers=[webhooks.router],
        consumers=lambda rt: [erasure_binding(NAME, _erase)],
        export=_export,
        on_start=[webhooks.hooks.on_start],
        on_stop=[webhooks.hooks.on_stop],
        uses_gate=True,
    )


def create_app(settings: EscalationSettings | None = None) -> FastAPI:
    settings = settings or EscalationSettings()
    return create_service_app(build_spec(settings.webhooks), settings)


__all__ = ["Runtime", "build_spec", "create_app"]
