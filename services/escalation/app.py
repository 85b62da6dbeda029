"""Assembly of the escalation service: crisis cases, human review, rosters and a timed ladder.

Consumes ``checkin.escalation.flagged.v2`` (sealed; v1 copies too) (proposed cases), ``consent.>`` (a withdrawal closes
the cases that rest on it) and erasure requests; answers check-in's ``rpc.escalation.casenote.v1``
and consent's export / access-log requests; polls its durable ladder timers; pages through the
shared signed webhook sender. Details: docs/escalation.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from sqlmodel import Session

from services.escalation.cases import endpoints as case_endpoints
from services.escalation.cases import handlers
from services.escalation.config import EscalationSettings
from services.escalation.deps import EscalationContext
from services.escalation.ladder import endpoints as ladder_endpoints
from services.escalation.ladder.tasks import start_timer_poll
from services.escalation.notify import EVENT_TYPES
from services.escalation.sla.models import CONTRIBUTIONS
from services.escalation.support import endpoints as support_endpoints
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.periodic import every
from shared.shredding import start_scrubber
from shared.topology import requests_to
from shared.webhooks import WebhookSettings, service_webhooks

NAME = "escalation"


def _now() -> datetime:
    return datetime.now(UTC)


def _attach(ctx: EscalationContext):  # type: ignore[no-untyped-def]
    async def on_start(rt: Runtime) -> None:
        ctx.runtime = rt
        assert rt.bus.nc is not None
        for spec in requests_to(NAME):
            await rt.bus.nc.subscribe(spec.subject, queue=NAME, cb=handlers.start_case_note_responder(rt))

        def purge() -> int:
            with Session(rt.engine) as session:
                done = handlers.purge_expired_holds(session, ctx, _now())
                session.commit()
            return done

        rt.tasks.append(every(3600, purge, name="escalation-legal-hold-purge"))
        # SLA contributions: shuffled release (with the tiny-unit roll-up) every sla_release_seconds.
        CONTRIBUTIONS.start_release(rt, float(ctx.settings.sla_release_seconds), ctx.settings.platform.k_anonymity)

    return on_start


def build_spec(ctx: EscalationContext, webhook_settings: WebhookSettings | None = None) -> ServiceSpec:
    webhooks = service_webhooks(EVENT_TYPES, webhook_settings)
    return ServiceSpec(
        name=NAME,
        title="Kinwell escalation",
        description="Crisis cases, human review, on-call rosters and timed escalation.",
        migrations=Path(__file__).parent / "migrations",
        routers=[webhooks.router, case_endpoints.router, support_endpoints.router, ladder_endpoints.router],
        consumers=lambda rt: handlers.bindings(ctx, rt),
        export=lambda session, pseudonym: handlers.export(session, ctx, pseudonym),
        on_start=[
            webhooks.hooks.on_start,
            _attach(ctx),
            start_timer_poll(_now),
            start_scrubber("data_key"),
        ],
        on_stop=[webhooks.hooks.on_stop],
        uses_gate=True,
    )


def create_app(settings: EscalationSettings | None = None) -> FastAPI:
    settings = settings or EscalationSettings()
    ctx = EscalationContext.from_settings(settings)
    app = create_service_app(build_spec(ctx, settings.webhooks), settings)
    app.state.escalation = ctx
    return app


__all__ = ["Runtime", "build_spec", "create_app"]
