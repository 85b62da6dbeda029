"""The HTTP server every service runs in: uvicorn with bounded reads and connections.

uvicorn times out idle keep-alive connections only: a client that sends half its headers, or
half its body, holds its socket for ever, and a thousand of them hold a service. The protocol
here (uvicorn's httptools protocol, extended) adds:

* a header read timeout: the request line and headers must arrive within
  ``http_header_timeout_seconds`` of the connection (or of the request's first byte);
* a body read timeout: the body must arrive within ``http_body_timeout_seconds`` of the headers;
* a connection limit (``http_max_connections``): connections beyond it are answered 503 at once;
* problem+json (not uvicorn's plain text) for what the parser refuses before the app sees the
  request (``Content-Length: -1``, a 24-digit length), and for the timeouts (408).

A timed-out or disconnected client is not an error of ours: it is logged at INFO by type only.
``run`` is what ``python -m services.<name>`` calls; tests start the same configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.edge import API_CSP, SECURITY_HEADERS
from shared.errors import PROBLEM_BASE, PROBLEM_JSON
from shared.settings import ServiceSettings

log = logging.getLogger("kinwell.server")

_REASONS = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


def problem_bytes(status: int, code: str, title: str, detail: str) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = json.dumps(
        {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}, separators=(",", ":")
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
        API_CSP,
    ]
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n".encode()
    return head + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body


_MALFORMED = problem_bytes(400, "malformed-request", "Bad request", "The request is not valid HTTP/1.1.")
_TIMEOUT = problem_bytes(408, "request-timeout", "Request timeout", "The request did not arrive in time.")
_BUSY = problem_bytes(503, "unavailable", "Service unavailable", "Too many connections; retry shortly.")


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read timeouts, a connection limit and problem+json."""

    limits: ClassVar[EdgeLimits]
    _read_timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_BUSY, "connection limit reached")
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.limits.header_timeout)  # a next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.limits.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        self._refuse(_MALFORMED, "malformed request")

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        cycle = self.cycle
        if cycle is not None and (cycle.response_started or cycle.response_complete):
            self.transport.close()  # answered already (e.g. 401 before the body): just hang up
        else:
            self._refuse(_TIMEOUT, "request read timed out")
        if cycle is not None:  # the app, if it is waiting for the body, sees a disconnect
            cycle.disconnected = True
            cycle.message_event.set()

    def _refuse(self, response: bytes, why: str) -> None:
        log.info("connection refused", extra={"outcome": why})
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def server_config(app: Any, settings: ServiceSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration of a service, with its edge limits from ``settings``."""
    limits = EdgeLimits(
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_connections=settings.http_max_connections,
    )
    protocol = type("KinwellHttpProtocol", (EdgeProtocol,), {"limits": limits})
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": protocol,
        "timeout_keep_alive": settings.http_keepalive_timeout_seconds,
        "log_config": None,
        "access_log": False,
        "server_header": False,  # the server's name and version are nobody's business
        "lifespan": "on",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


def run(app: Any, settings: ServiceSettings) -> None:
    """Serve ``app`` until SIGINT/SIGTERM."""
    uvicorn.Server(server_config(app, settings)).run()
