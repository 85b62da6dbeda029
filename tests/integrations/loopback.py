"""Real HTTP servers on loopback for integration tests: uvicorn in a thread, and a scriptable receiver."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.natsserver import free_port


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"served-{self.port}")
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


# An action: a status code, (status, headers), or ("sleep", seconds) before a 200.
Action = int | tuple[int, dict[str, str]] | tuple[str, float]


@dataclass
class Receiver:
    """A webhook receiver whose answers are scripted per path; it records every request it gets."""

    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[Action]] = field(default_factory=dict)
    after: dict[str, Action] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    served: Served | None = None

    def script(self, path: str, *actions: Action, then: Action = 200) -> str:
        """Answer ``actions`` in turn on ``path``, then ``then`` forever; returns the full URL."""
        with self.lock:
            self.scripts[path] = list(actions)
            self.after[path] = then
        return self.url(path)

    def url(self, path: str) -> str:
        assert self.served is not None
        return self.served.url + path

    def hits_on(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def _next(self, path: str) -> Action:
        with self.lock:
            queue = self.scripts.get(path)
            if queue:
                return queue.pop(0)
            return self.after.get(path, 200)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        with self.lock:
            self.hits.append(Hit(path, dict(request.headers), body, time.time()))
        action = self._next(path)
        if isinstance(action, tuple) and action[0] == "sleep":
            await asyncio.sleep(float(action[1]))
            return Response(status_code=200)
        if isinstance(action, tuple):
            status, headers = action
            return Response(status_code=int(status), headers=dict(headers))  # type: ignore[arg-type]
        return Response(status_code=action)

    def start(self) -> Receiver:
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST", "GET"])])
        self.served = Served(app)
        return self

    def stop(self) -> None:
        if self.served is not None:
            self.served.stop()


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
