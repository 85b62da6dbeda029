"""Assembly of the aggregator service.

Until its own issue lands it serves health, readiness and metrics, the admin API of its outbound
webhooks (``/v1/subscriptions``, with a sender started beside the bus), answers data-subject export
and access-log requests with what it holds (nothing yet), and acknowledges erasure requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.aggregator.config import AggregatorSettings
from services.aggregator.notify import EVENT_TYPES
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.service_kit import erasure_binding
from shared.webhooks import WebhookSettings, service_webhooks

NAME = "aggregator"


def _erase(session: Session, pseudonym: str) -> int:
    return 0  # holds no subject data yet


def _export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {}


def build_spec(webhook_settings: WebhookSettings | None = None) -> ServiceSpec:
    webhooks = service_webhooks(EVENT_TYPES, webhook_settings)
    return ServiceSpec(
        name=NAME,
        title="Kinwell aggregator",
        description="Anonymised, k-anonymous, differentially private trends for HR.",
        migrations=Path(__file__).parent / "migrations",
        routers=[webhooks.router],
        consumers=lambda rt: [erasure_binding(NAME, _erase)],
        export=_export,
        on_start=[webhooks.hooks.on_start],
        on_stop=[webhooks.hooks.on_stop],
        uses_gate=False,
    )


def create_app(settings: AggregatorSettings | None = None) -> FastAPI:
    settings = settings or AggregatorSettings()
    return create_service_app(build_spec(settings.webhooks), settings)


__all__ = ["Runtime", "build_spec", "create_app"]
