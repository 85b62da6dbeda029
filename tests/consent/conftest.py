"""One real platform for the consent tests: a provisioned nats-server and the five services.

Starting five services is quick, stopping them is not (each drains its NATS connection), so the
consent tests share one platform (package scope), and stop its services in parallel. Tests use
fresh employee ids, so they do not see each other's subjects; a test that stops or restarts a
service brings it back before it ends.
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from shared.auth import Role, dev_token
from shared.crypto import pseudonym
from shared.natsserver import USERS, NatsServer, free_port
from shared.settings import SERVICES, PlatformSettings, ServiceSettings
from tests.dbfixtures import db_urls
from tests.servicefixtures import TEST_RATE_LIMITS, RunningService, bearer

GATED = ("checkin", "recommender", "escalation")
CONSENT_OVERRIDES: dict[str, Any] = {
    "erasure_retry_after_seconds": 1.0,
    "erasure_retry_check_seconds": 0.5,
    "subject_request_timeout_seconds": 1.0,
}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(interval)


def service_settings(
    name: str, db_url: str, nats: NatsServer, platform: PlatformSettings, **kw: Any
) -> ServiceSettings:
    config = importlib.import_module(f"services.{name}.config")
    cls = next(
        v
        for v in vars(config).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    )
    creds = nats.connect_kwargs(name)
    values = {
        "port": free_port(),
        "metrics_port": free_port(),
        "database_url": db_url,
        **TEST_RATE_LIMITS,
        "nats_user": creds["user"],
        "nats_password": creds["password"],
    }
    return cls(**values, platform=platform, **kw)


@dataclass
class Platform:
    nats: NatsServer
    settings: PlatformSettings
    services: dict[str, RunningService] = field(default_factory=dict)

    @property
    def consent(self) -> RunningService:
        return self.services["consent"]

    def token(self, sub: str, *roles: str) -> str:
        return dev_token(self.settings, sub, [Role(r) for r in (roles or ("employee",))])

    def auth(self, sub: str, *roles: str) -> dict[str, str]:
        return bearer(self.token(sub, *roles))

    def pseudonym(self, sub: str) -> str:
        return pseudonym(self.settings.secret("pseudonym_key"), self.settings.tenant, sub)

    def gates(self, subject: str, purpose: str) -> dict[str, bool]:
        return {name: self.services[name].runtime.gate.allowed(subject, purpose) for name in GATED}

    @contextmanager
    def consent_db(self) -> Iterator[Session]:
        with Session(self.consent.runtime.engine) as session:
            yield session

    def ops(self, coro_fn: Callable[[Any], Any]) -> Any:
        """Run ``coro_fn(js)`` as the NATS ops user (test inspection only)."""

        async def body() -> Any:
            import nats

            nc = await nats.connect(**self.nats.connect_kwargs("ops"))
            try:
                return await coro_fn(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(body())


def new_sub() -> str:
    return f"E-{uuid.uuid4().hex[:12]}"


def stop_all(services: list[RunningService]) -> None:
    with ThreadPoolExecutor(len(services) or 1) as pool:
        list(pool.map(lambda s: s.stop(), services))


@contextmanager
def running_platform(root: Path, names: Sequence[str], overrides: dict[str, dict[str, Any]]) -> Iterator[Platform]:
    """``names`` started on one private nats-server and one set of platform secrets, each service
    with its own database and its ``overrides``; stopped on exit."""
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with NatsServer(root / "nats", passwords=passwords) as nats, db_urls(root) as make_db:
        nats.provision()
        settings = PlatformSettings(mode="embedded", data_dir=root / "data", nats_url=nats.url)
        plat = Platform(nats, settings)
        for name in names:
            extra = overrides.get(name, {})
            plat.services[name] = RunningService(name, service_settings(name, make_db(name), nats, settings, **extra))
        try:
            # One at a time: Alembic's ``op``/``context`` are process-global, so migrations of
            # services in one process must not overlap (in production each is its own process).
            for svc in plat.services.values():
                svc.start()
            yield plat
        finally:
            stop_all(list(plat.services.values()))


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("consent-platform"), SERVICES, {"consent": CONSENT_OVERRIDES}
    ) as plat:
        yield plat
