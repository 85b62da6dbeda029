"""Fixtures: a migrated database, a loopback receiver, and the webhook admin API served like a service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.auth import Role, TokenVerifier, dev_token
from shared.db import make_engine, run_migrations
from shared.errors import BodyLimitMiddleware, install_error_handlers
from shared.settings import PlatformSettings, ServiceSettings
from shared.webhooks import SecretBox, WebhookDelivery, WebhookSender, WebhookSettings, enqueue, webhooks_router
from shared.webhooks.queue import seconds_until_next_due
from shared.webhooks.ssrf import Resolver
from tests.integrations.loopback import Receiver, Served

MIGRATIONS = Path(__file__).parent / "migrations"
EVENT = "insight.released"


def loopback_settings(**overrides: Any) -> WebhookSettings:
    """Fast retries, loopback receivers allowed explicitly (production allows neither)."""
    values: dict[str, Any] = {
        "require_https": False,
        "allow_networks": ["127.0.0.0/8", "::1/128"],
        "retry_schedule": [0, 0.2, 0.4, 0.6],
        "poll_interval_seconds": 0.05,
        "timeout_seconds": 2.0,
        "connect_timeout_seconds": 1.0,
    }
    values.update(overrides)
    return WebhookSettings(**values)


@pytest.fixture
def platform(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(mode="embedded", data_dir=tmp_path / "data")


@pytest.fixture
def db_url_migrated(make_db_url: Callable[[str], str]) -> str:
    url = make_db_url("webhooks")
    run_migrations(url, MIGRATIONS)
    return url


@pytest.fixture
def engine(db_url_migrated: str) -> Iterator[Engine]:
    eng = make_engine(db_url_migrated)
    yield eng
    eng.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@dataclass
class WebhookApi:
    """The admin API and a sender on one database, served over loopback HTTP."""

    app: FastAPI
    served: Served
    client: httpx.Client
    engine: Engine
    admin: dict[str, str]

    @property
    def sender(self) -> WebhookSender:
        return self.app.state.sender  # type: ignore[no-any-return]

    def subscribe(self, url: str, event_types: list[str] | None = None) -> dict[str, Any]:
        r = self.client.post("/v1/subscriptions", json={"url": url, "event_types": event_types or [EVENT]})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def emit(self, payload: dict[str, Any], event_type: str = EVENT) -> list[str]:
        with Session(self.engine) as session:
            ids = enqueue(session, event_type, payload)
            session.commit()
        return ids

    def delivery(self, delivery_id: str) -> WebhookDelivery:
        with Session(self.engine) as session:
            row = session.get(WebhookDelivery, delivery_id)
            assert row is not None
            return row

    def settled(self) -> bool:
        """Nothing pending in the database and no attempt in flight or unrecorded in this sender:
        from here on it sends nothing until something new is enqueued (a probe of state, so tests
        need no sleep to show that nothing more is sent)."""
        sender = self.sender
        idle = not sender._inflight and not sender._outcomes and not sender._settling
        return idle and seconds_until_next_due(self.engine) is None

    def statuses(self) -> list[str]:
        with Session(self.engine) as session:
            return list(session.exec(select(WebhookDelivery.status).order_by(col(WebhookDelivery.created_at))).all())


def build_app(
    engine: Engine,
    platform: PlatformSettings,
    url: str,
    settings: WebhookSettings,
    resolver: Resolver | None = None,
    with_sender: bool = True,
    event_types: set[str] | None = None,
) -> FastAPI:
    """Assembled the way create_service_app does it (errors, body limit, verifier, settings)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sender = None
        if with_sender:
            sender = WebhookSender(engine, SecretBox.from_platform(platform), settings, resolver=resolver)
            sender.start()
        app.state.sender = sender
        yield
        if sender is not None:
            await sender.stop()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.state.engine = engine
    app.state.settings = ServiceSettings(service_name="aggregator", database_url=url, platform=platform)
    app.state.verifier = TokenVerifier(platform)
    app.include_router(webhooks_router(settings=settings, resolver=resolver, event_types=event_types))
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024)
    return app


@pytest.fixture
def webhook_api(
    engine: Engine, platform: PlatformSettings, db_url_migrated: str
) -> Iterator[Callable[..., WebhookApi]]:
    started: list[WebhookApi] = []

    def start(
        settings: WebhookSettings | None = None,
        *,
        resolver: Resolver | None = None,
        with_sender: bool = True,
        event_types: set[str] | None = None,
    ) -> WebhookApi:
        settings = settings or loopback_settings()
        app = build_app(engine, platform, db_url_migrated, settings, resolver, with_sender, event_types)
        served = Served(app)
        token = dev_token(platform, "admin-1", [Role.admin])
        admin = {"Authorization": f"Bearer {token}"}
        api = WebhookApi(app, served, httpx.Client(base_url=served.url, headers=admin, timeout=10), engine, admin)
        started.append(api)
        return api

    yield start
    for api in reversed(started):
        api.client.close()
        api.served.stop()
