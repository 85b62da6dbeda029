"""Assembly of the consent service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from services.consent import endpoints, endpoints_policy, endpoints_rights, erasure, handlers, hris, hris_endpoints
from services.consent.config import ConsentSettings
from services.consent.contact import start_contact_responder
from services.consent.deps import ConsentContext
from services.consent.writer import stop_writer
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.db import session_scope
from shared.periodic import every
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


def start_erasure_retries(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    return lambda rt: _start_erasure_retries(rt, ctx)


async def _start_erasure_retries(rt: Runtime, ctx: ConsentContext) -> None:
    """Re-publish erasure requests that are still missing acknowledgements (state is in the
    database, so this resumes after a restart; every replica may run it, rows are locked)."""
    settings = rt.settings
    assert isinstance(settings, ConsentSettings)

    def resend() -> int:
        with contextmanager(session_scope)(rt.engine) as session:
            return erasure.resend_stale(session, settings.erasure_retry_after_seconds, ctx)

    interval = settings.erasure_retry_check_seconds
    rt.tasks.append(every(interval, resend, name="consent-erasure-retries", initial_delay=interval))


async def start_hris_purge(rt: Runtime) -> None:
    """Forget processed HRIS webhook ids past their retention, hourly (any replica may run it)."""
    settings = rt.settings
    assert isinstance(settings, ConsentSettings)

    def purge() -> int:
        with contextmanager(session_scope)(rt.engine) as session:
            return hris.purge_webhook_ids(session, settings.hris_webhook_id_retention_days)

    rt.tasks.append(every(3600, purge, name="consent-hris-webhook-id-purge"))


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
            endpoints.router,
            endpoints_rights.router,
            endpoints_policy.public,
            endpoints_policy.admin,
            endpoints_policy.hr,
            hris_endpoints.webhooks,
            hris_endpoints.imports,
            hris_endpoints.rates,
        ],
        consumers=lambda rt: handlers.bindings(rt, ctx),
        on_start=[
            ensure_kv_bucket(ctx),
            start_erasure_retries(ctx),
            start_hris_purge,
            start_contact_responder(ctx),
            start_scrubber(
                "directory", "contact_detail", "erasure_request", "outbox"
            ),  # PostgreSQL: vacuum after erasures
        ],
        on_stop=[stop_writer],
    )


def create_app(settings: ConsentSettings | None = None) -> FastAPI:
    settings = settings or ConsentSettings()
    ctx = ConsentContext.from_settings(settings)
    app = create_service_app(build_spec(ctx), settings)
    app.state.consent = ctx
    return app
