"""Assembly of the aggregator service.

Bus: consumes contributions (``contribution.>``), the org tree and managers' scopes
(``hris.org.>``), triggers (``hris.trigger.>``) and erasure requests; publishes
``aggregator.reporting.*`` through the outbox. Background: releases closed weeks (one scheduler).
HTTP: ``/v1/org``, ``/v1/rollups``, ``/v1/insights``, ``/v1/program-metrics`` (hr_analyst,
manager), ``/v1/me/team-view`` (employee), and ``/v1/subscriptions`` for outbound webhooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.aggregator.clock import Clock
from services.aggregator.config import AggregatorSettings
from services.aggregator.contributions import handlers as contribution_handlers
from services.aggregator.forecasts import tasks as forecast_tasks
from services.aggregator.insights import playbook
from services.aggregator.insights.endpoints import router as insights_router
from services.aggregator.notify import EVENT_TYPES
from services.aggregator.org import handlers as org_handlers
from services.aggregator.org.endpoints import router as org_router
from services.aggregator.releases import tasks
from services.aggregator.releases.endpoints import router as releases_router
from shared.app import Runtime, ServiceSpec, create_service_app, erasure_binding
from shared.webhooks import WebhookSettings, service_webhooks

NAME = "aggregator"


def _erase(session: Session, pseudonym: str) -> int:
    # Nothing is keyed by a person: open weeks hold per-week tokens the aggregator cannot link to a
    # pseudonym (it has no period key); released weeks hold only group figures (docs/aggregator.md).
    return 0


def _export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {}


def build_spec(
    settings: AggregatorSettings, clock: Clock, webhook_settings: WebhookSettings | None = None
) -> ServiceSpec:
    webhooks = service_webhooks(EVENT_TYPES, webhook_settings)

    async def start(rt: Runtime) -> None:
        if not rt.started:
            rt.tasks.extend(tasks.start(rt, settings, clock))
            rt.tasks.extend(forecast_tasks.start(rt, settings, clock))
            rt.started = True

    return ServiceSpec(
        name=NAME,
        title="Kinwell aggregator",
        description="Anonymised, k-anonymous, differentially private trends for HR.",
        migrations=Path(__file__).parent / "migrations",
        routers=[org_router, releases_router, insights_router, webhooks.router],
        consumers=lambda rt: [
            erasure_binding(NAME, _erase),
            contribution_handlers.binding(),
            *org_handlers.bindings(),
        ],
        export=_export,
        on_start=[start, webhooks.hooks.on_start],
        on_stop=[webhooks.hooks.on_stop],
        uses_gate=False,
    )


def create_app(settings: AggregatorSettings | None = None) -> FastAPI:
    settings = settings or AggregatorSettings()
    clock = Clock(settings.clock_offset_days)
    book = playbook.load(settings.playbook_path)
    app = create_service_app(build_spec(settings, clock, settings.webhooks), settings)
    app.state.clock = clock
    app.state.playbook = book
    return app


__all__ = ["Runtime", "build_spec", "create_app"]
