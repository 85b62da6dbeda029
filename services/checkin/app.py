"""Assembly of the checkin service.

HTTP: instruments, check-ins (group-committed), step-ups, own history, nudges, shared notes.
Bus: consumes erasure requests, HRIS org-unit assignments and consent changes; publishes
purpose-scoped derivatives through the outbox; answers export and access-log requests.
Background: due nudges (as signed webhooks), retention, shuffled release of contributions.
Admin: ``/v1/subscriptions`` for the outbound webhooks (``checkin.nudge.due``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlmodel import Session

from services.checkin import repository, signals_repository, subjects
from services.checkin.config import CheckinSettings
from services.checkin.deps import CheckinContext
from services.checkin.endpoints import router
from services.checkin.handlers import NAME, bindings
from services.checkin.instruments import check_complete
from services.checkin.nudges import EVENT_TYPES, handle_router
from services.checkin.relay import PipelinedOutboxRelay
from services.checkin.schemas import CheckinCreate
from services.checkin.signals import SignalBatch
from services.checkin.signals_endpoints import SignalsState, widen_body_limit
from services.checkin.signals_endpoints import router as signals_router
from services.checkin.tasks import start_tasks
from services.checkin.writer import GroupCommitWriter
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.datakeys import DataKeyStore, MasterKeys
from shared.db import make_engine
from shared.eventkeys import EventKeyring
from shared.shredding import start_scrubber
from shared.webhooks import service_webhooks


def build_spec(settings: CheckinSettings, ctx: CheckinContext) -> ServiceSpec:
    webhooks = service_webhooks(EVENT_TYPES, settings.webhooks)  # nudges to chat apps

    async def start(rt: Runtime) -> None:
        # Idempotent: the app factory retries a start-up hook that fails.
        if not isinstance(rt.relay, PipelinedOutboxRelay):
            # Swap in the relay that pipelines same-subject events instead of one per round.
            await rt.relay.stop()
            rt.relay = PipelinedOutboxRelay(rt.engine, rt.bus)
            rt.relay.start()
        ctx.writer.on_commit = rt.relay.notify
        ctx.writer.gate = rt.gate
        ctx.event_keys.attach(rt.bus)
        if not ctx.started:
            if rt.gate is not None:
                rt.gate.on_revoked(lambda pseudonym, purpose: _revoked(rt, pseudonym, purpose))
            rt.tasks.extend(start_tasks(rt, settings))
            ctx.started = True

    async def stop(rt: Runtime) -> None:
        await ctx.writer.stop()

    def export(session: Session, pseudonym: str) -> dict[str, Any]:
        return subjects.export(session, ctx.keys, pseudonym)

    return ServiceSpec(
        name=NAME,
        title="Kinwell checkin",
        description="Validated check-ins, risk screening, encryption with crypto-shredding, nudges.",
        migrations=Path(__file__).parent / "migrations",
        routers=[router, handle_router, webhooks.router],
        consumers=lambda rt: bindings(ctx),
        export=export,
        uses_gate=True,
        on_start=[start, webhooks.hooks.on_start, start_scrubber("data_key")],
        on_stop=[stop, webhooks.hooks.on_stop],
    )


def _revoked(rt: Runtime, pseudonym: str, purpose: str) -> None:
    """The gate saw ``checkin`` go: drop the reminder at once; ``work_patterns``: the stored signal
    days (the durable consent consumer does the rest, and does this too, so a lost listener call
    loses nothing)."""
    if purpose not in ("checkin", "work_patterns"):
        return

    def drop() -> None:
        with Session(rt.engine) as session:
            if purpose == "checkin":
                repository.delete_nudge(session, pseudonym)
            else:
                signals_repository.delete_of(session, pseudonym)
            session.commit()

    task = asyncio.get_running_loop().create_task(asyncio.to_thread(drop))
    rt.tasks.append(task)


def create_app(settings: CheckinSettings | None = None) -> FastAPI:
    settings = settings or CheckinSettings()
    check_complete()
    assert settings.database_url is not None
    ctx = CheckinContext(
        settings=settings,
        keys=DataKeyStore(MasterKeys.from_settings(settings.platform)),
        writer=GroupCommitWriter(
            make_engine(settings.database_url, pool_size=2),
            trend_weeks=settings.trend_weeks,
            max_batch=settings.writer_max_batch,
            linger=settings.writer_linger_ms / 1000,
        ),
        event_keys=EventKeyring(settings.platform.secret("event_key_kek")),
    )
    signals = SignalsState.create(settings)
    spec = build_spec(settings, ctx)
    spec.routers.append(signals_router)
    spec.schemas += [CheckinCreate, SignalBatch]  # bodies parsed by hand, documented by schema
    spec.on_stop.append(signals.stop)
    app = create_service_app(spec, settings)
    app.state.checkin = ctx
    app.state.signals = signals
    widen_body_limit(app, settings)
    _routes_first(app, router)
    return app


def _routes_first(app: FastAPI, ours: APIRouter) -> None:
    """Routes are tried in order: ours (the check-in POST first, see endpoints.py) before the docs
    and ops routes, as check-ins are most of the traffic. Paths do not overlap, so this changes
    only how soon the hot route is found."""
    routes = app.router.routes
    mine = [r for r in routes if getattr(r, "original_router", None) is ours]
    for route in mine:
        routes.remove(route)
    routes[:0] = mine


__all__ = ["Runtime", "build_spec", "create_app"]
