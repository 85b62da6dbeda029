"""Assembly of the consent service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI

from services.consent.config import ConsentSettings
from services.consent.consents import endpoints as consents
from services.consent.deps import ConsentContext
from services.consent.directory.handlers import start_contact_responder
from services.consent.erasure import endpoints as erasure
from services.consent.erasure import handlers as erasure_acks
from services.consent.erasure.tasks import start_erasure_retries
from services.consent.hris import endpoints as hris
from services.consent.hris.tasks import start_hris_purge
from services.consent.policy import endpoints as policy
from services.consent.rights import endpoints as rights
from services.consent.stats import endpoints as stats
from services.consent.writer import writer_stopper
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.shredding import start_scrubber
from shared.topology import KV_BUCKET

NAME = "consent"
log = logging.getLogger("kinwell.consent")


def ensure_kv_bucket(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    async def check(rt: Runtime) -> None:
        """The consent KV bucket (declared by the provisioner) must exist before we write to it."""
        await rt.bus.js.key_value(KV_BUCKET)
        ctx.event_keys.attach(rt.bus)

    return check


def build_spec(ctx: ConsentContext) -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        title="Kinwell consent",
        description=(
            "Purposes and policy versions, consents and signed receipts, the subject directory, "
            "and data-subject requests (export, erasure, access log) across the platform."
        ),
        migrations=Path(__file__).parent / "migrations",
        routers=[
            consents.router,
            rights.router,
            erasure.router,
            policy.public,
            policy.admin,
            stats.router,
            hris.webhooks,
            hris.imports,
        ],
        consumers=lambda rt: erasure_acks.bindings(rt, ctx),
        on_start=[
            ensure_kv_bucket(ctx),
            start_erasure_retries(ctx),
            start_hris_purge,
            start_contact_responder(ctx),
            start_scrubber(
                "directory", "contact_detail", "erasure_request", "outbox"
            ),  # PostgreSQL: vacuum after erasures
        ],
        on_stop=[writer_stopper(ctx)],
    )


def create_app(settings: ConsentSettings | None = None) -> FastAPI:
    settings = settings or ConsentSettings()
    ctx = ConsentContext.from_settings(settings)
    app = create_service_app(build_spec(ctx), settings)
    app.state.consent = ctx
    return app
