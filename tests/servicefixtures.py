"""Run real services in tests: real uvicorn on a free port, real NATS, a real database each.

``start_service("consent")`` returns a :class:`RunningService` with ``url`` and ``client`` (an
``httpx.Client`` on that URL) once ``/readyz`` says ready. Every service started in one test
shares one data folder (so one set of platform secrets: pseudonyms agree across services) and
the session's nats-server. ``token(sub, *roles)`` mints a dev token those services accept.
``running.stop()`` / ``running.restart()`` simulate a crash or a redeploy with data kept.
"""

from __future__ import annotations

import importlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from shared.natsserver import USERS, NatsServer, free_port
from shared.server import server_config
from shared.settings import PlatformSettings, ServiceSettings

# Tests act as a few principals from one address at machine speed: the abuse limits of a real
# deployment would answer them 429. The limits themselves are tested, with their own small values,
# in tests/system/test_rate_limits.py.
TEST_RATE_LIMITS = {"rate_limit_per_principal": "100000/second", "rate_limit_per_source": "100000/second"}


@dataclass
class RunningService:
    name: str
    settings: ServiceSettings
    url: str = ""
    client: httpx.Client = field(init=False)
    app: Any = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def start(self, ready_timeout: float = 30.0) -> RunningService:
        module = importlib.import_module(f"services.{self.name}.app")
        self.app = module.create_app(self.settings)
        # The production server configuration (timeouts, connection limit), on loopback.
        self._server = uvicorn.Server(server_config(self.app, self.settings, host="127.0.0.1"))
        self._thread = threading.Thread(target=self._server.run, name=f"svc-{self.name}", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.client = httpx.Client(base_url=self.url, timeout=15.0)
        deadline = time.monotonic() + ready_timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.client.get("/readyz").json()
                if last.get("ready"):
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready: {last}")

    def metrics(self) -> str:
        """The Prometheus text of the service's own metrics listener (not its service port)."""
        assert self.settings.metrics_port is not None, "started without a metrics port"
        return httpx.get(f"http://127.0.0.1:{self.settings.metrics_port}/metrics", timeout=5.0).text

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.client.close()

    def restart(self) -> RunningService:
        self.stop()
        return self.start()


@pytest.fixture
def service_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own, so durable consumers and streams start empty."""
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with NatsServer(tmp_path / "nats", passwords=passwords) as server:
        server.provision()
        yield server


@pytest.fixture
def platform_settings(service_nats: NatsServer, tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(mode="embedded", data_dir=tmp_path / "data", nats_url=service_nats.url)


@pytest.fixture
def start_service(
    service_nats: NatsServer, make_db_url: Callable[[str], str], platform_settings: PlatformSettings
) -> Iterator[Callable[..., RunningService]]:
    started: list[RunningService] = []

    def start(name: str, **overrides: Any) -> RunningService:
        config = importlib.import_module(f"services.{name}.config")
        cls = next(
            v
            for v in vars(config).values()
            if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
        )
        kw = service_nats.connect_kwargs(name)
        values: dict[str, Any] = {
            "port": free_port(),
            "metrics_port": free_port(),
            "database_url": make_db_url(name),
            "nats_user": kw["user"],
            "nats_password": kw["password"],
            "platform": platform_settings,
            **TEST_RATE_LIMITS,
        }
        values.update(overrides)
        svc = RunningService(name, cls(**values)).start()
        started.append(svc)
        return svc

    yield start
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def token(platform_settings: PlatformSettings) -> Callable[..., str]:
    from shared.auth import Role, dev_token

    def make(sub: str, *roles: str) -> str:
        return dev_token(platform_settings, sub, [Role(r) for r in (roles or ("employee",))])

    return make


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}
