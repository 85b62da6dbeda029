"""Assembly of the recommender service.

HTTP: the catalogue (public browsing, admin changes), recommendations, preferences,
interactions, the profile, learning paths, self-declared attributes and fairness reports.
Bus: needs from check-ins, HRIS profiles, org units and tree, consent changes and erasure
requests; publishes ``recommender.fairness.flagged.v1`` and engagement counters
(``contribution.>``). Background: the weekly fairness audit, the shuffled counter release.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from services.recommender import subjects
from services.recommender.audits.endpoints import router as audits_router
from services.recommender.audits.tasks import release_ended_week
from services.recommender.catalogue.endpoints import router as catalogue_router
from services.recommender.catalogue.service import CatalogueCache, seed_starter
from services.recommender.config import RecommenderSettings
from services.recommender.deps import RecommenderContext
from services.recommender.engagement.models import CONTRIBUTIONS
from services.recommender.paths.endpoints import router as paths_router
from services.recommender.profiles.endpoints import router as profiles_router
from services.recommender.profiles.handlers import bindings
from services.recommender.ranking.endpoints import router as ranking_router
from shared.app import ConsumerBinding, Runtime, ServiceSpec, create_service_app, erasure_binding
from shared.db import session_scope
from shared.eventkeys import EventKeyring
from shared.periodic import every

NAME = "recommender"


def build_spec(ctx: RecommenderContext) -> ServiceSpec:
    settings = ctx.settings

    async def start(rt: Runtime) -> None:
        def seed() -> int:
            with contextmanager(session_scope)(rt.engine) as session:
                added = seed_starter(session)
            with contextmanager(session_scope)(rt.engine) as session:
                ctx.catalogue.snapshot(session)  # loaded before serving, and so frozen with the rest
            return added

        await asyncio.to_thread(seed)
        if rt.gate is not None and not rt.started:
            rt.gate.on_revoked(lambda pseudonym, purpose: _forget_now(rt, pseudonym, purpose))
            rt.tasks.append(
                every(
                    settings.audit_interval_seconds,
                    lambda: release_ended_week(rt.engine, settings, rt.relay.notify),
                    name="recommender-fairness-audit",
                )
            )
            # Engagement counters: shuffled release, tiny units rolled up (shared.contributions).
            CONTRIBUTIONS.start_release(rt, settings.contribution_release_seconds, settings.platform.k_anonymity)
            rt.started = True

    def consumers(rt: Runtime) -> list[ConsumerBinding]:
        ctx.event_keys.attach(rt.bus)  # on the event loop, before the needs consumer starts
        period_key = settings.platform.secret("period_key")
        assert rt.gate is not None, "the recommender runs with a consent gate"
        return [erasure_binding(NAME, subjects.erase), *bindings(rt.gate, ctx.event_keys, period_key)]

    return ServiceSpec(
        name=NAME,
        title="Kinwell recommender",
        description="Resources chosen for each employee, in their language, with the reason shown.",
        migrations=Path(__file__).parent / "migrations",
        routers=[catalogue_router, ranking_router, profiles_router, paths_router, audits_router],
        consumers=consumers,
        export=subjects.export,
        uses_gate=True,
        on_start=[start],
    )


def _forget_now(rt: Runtime, pseudonym: str, purpose: str) -> None:
    """The gate saw a consent end: delete what was held for it at once (the durable consent
    consumer does the same, so a lost call loses nothing)."""
    if purpose not in subjects.FORGET:
        return

    def forget() -> None:
        with contextmanager(session_scope)(rt.engine) as session:
            subjects.forget(session, pseudonym, purpose)

    rt.tasks.append(asyncio.get_running_loop().create_task(asyncio.to_thread(forget)))


def create_app(settings: RecommenderSettings | None = None) -> FastAPI:
    settings = settings or RecommenderSettings()
    ctx = RecommenderContext(
        settings=settings,
        catalogue=CatalogueCache(),
        event_keys=EventKeyring(settings.platform.secret("event_key_kek")),
    )
    app = create_service_app(build_spec(ctx), settings)
    app.state.recommender = ctx
    return app


__all__ = ["Runtime", "build_spec", "create_app"]
