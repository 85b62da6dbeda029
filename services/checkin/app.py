"""Assembly of the checkin service.

HTTP: instruments, check-ins (group-committed), step-ups, own history, nudges, shared notes.
Bus: consumes erasure requests, HRIS org-unit assignments and consent changes; publishes
purpose-scoped derivatives through the outbox; answers export and access-log requests.
Background: due nudges (as signed webhooks), retention, shuffled release of contributions.
Admin: ``/v1/subscriptions`` for the outbound webhooks (``checkin.nudge.due``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.checkin.checkins import tasks as checkins_tasks
from services.checkin.checkins.endpoints import router as checkins_router
from services.checkin.checkins.instruments import check_complete
from services.checkin.checkins.writer import GroupCommitWriter
from services.checkin.clock import utcnow
from services.checkin.config import CheckinSettings
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.deps import CheckinContext
from services.checkin.notes.endpoints import router as notes_router
from services.checkin.nudges import repository as nudges_repo
from services.checkin.nudges import service as nudges
from services.checkin.nudges.endpoints import router as nudges_router
from services.checkin.signals import repository as signals_repo
from services.checkin.signals import tasks as signals_tasks
from services.checkin.signals.endpoints import PATH as SIGNALS_PATH
from services.checkin.signals.endpoints import SignalsState
from services.checkin.signals.endpoints import router as signals_router
from services.checkin.signals.schemas import SignalBatch
from services.checkin.subjects import handlers as subjects_handlers
from services.checkin.subjects import service as subjects
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.datakeys import DataKeyStore, MasterKeys
from shared.db import make_engine
from shared.eventkeys import EventKeyring
from shared.periodic import every
from shared.shredding import start_scrubber
from shared.webhooks import service_webhooks


def build_spec(settings: CheckinSettings, ctx: CheckinContext) -> ServiceSpec:
    webhooks = service_webhooks(nudges.EVENT_TYPES, settings.webhooks)  # nudges to chat apps

    async def start(rt: Runtime) -> None:
        # Idempotent: the app factory retries a start-up hook that fails.
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
        name=subjects_handlers.NAME,
        title="Kinwell checkin",
        description="Validated check-ins, risk screening, encryption with crypto-shredding, nudges.",
        migrations=Path(__file__).parent / "migrations",
        routers=[checkins_router, nudges_router, notes_router, webhooks.router],
        consumers=lambda rt: subjects_handlers.bindings(ctx),
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
                nudges_repo.delete_nudge(session, pseudonym)
            else:
                signals_repo.delete_of(session, pseudonym)
            session.commit()

    task = asyncio.get_running_loop().create_task(asyncio.to_thread(drop))
    rt.tasks.append(task)


def _in_transaction(engine: Engine, work: Callable[[Session], int]) -> Callable[[], int]:
    """``work`` as a periodic job: one transaction per run, rolled back when it fails."""

    def run() -> int:
        with Session(engine, expire_on_commit=False) as session:
            try:
                done = work(session)
                session.commit()
                return done
            except BaseException:
                session.rollback()
                raise

    return run


def start_tasks(rt: Any, settings: CheckinSettings) -> list[asyncio.Task[None]]:
    """Create the three loops on the running event loop; ``rt.tasks`` cancels them at shutdown."""
    grace = timedelta(hours=settings.nudge_grace_hours)
    send = nudges.webhook_sender(nudges.handle_key(settings.platform))

    def due(session: Session) -> int:
        return nudges.run_due(session, rt.gate, datetime.now(UTC), grace=grace, send=send)

    def retention(session: Session) -> int:
        return checkins_tasks.purge_expired(session, settings.retention_days)

    def release(session: Session) -> int:
        period_key, close_hours = settings.platform.secret("period_key"), settings.signals_close_hours
        closed = signals_tasks.close_weeks(session, rt.gate, period_key, close_hours, utcnow(), rt.relay.notify)
        return closed + CONTRIBUTIONS.release(session, settings.platform.k_anonymity, rt.relay.notify)

    return [
        every(settings.nudge_interval_seconds, _in_transaction(rt.engine, due), name="checkin-nudges"),
        every(settings.retention_interval_seconds, _in_transaction(rt.engine, retention), name="checkin-retention"),
        every(settings.contribution_release_seconds, _in_transaction(rt.engine, release), name="checkin-contributions"),
    ]


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
    spec.schemas.append(SignalBatch)  # parsed by hand (see signals/endpoints.py), documented by schema
    spec.body_limits[SIGNALS_PATH] = settings.signals_max_body_bytes
    spec.on_stop.append(signals.stop)
    app = create_service_app(spec, settings)
    app.state.checkin = ctx
    app.state.signals = signals
    return app


__all__ = ["Runtime", "build_spec", "create_app"]
