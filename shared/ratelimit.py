"""Abuse limits on writes: per verified principal and per client address, with ``limits``; and
a bound on the requests a process works on at once (:class:`InFlightLimit`).

Every write (POST, PUT, PATCH, DELETE) counts against its source address before anything else
runs (:class:`SourceRateLimit`, so unauthenticated floods and signed webhooks are limited too), and
against its caller once the token is verified (``shared.auth.get_principal`` calls
:meth:`RateLimiter.hit_principal`). Over a limit: 429 problem+json with ``Retry-After``.

Counters live in the process (``limits``' memory storage, sliding window counters): each replica
limits on its own, so a deployment's effective limit is the setting times its replicas. Behind an
ingress, set uvicorn's forwarded-IP handling (``FORWARDED_ALLOW_IPS``) or limit per source at the
ingress, or every caller shares the ingress's address. Keys are held in memory only, never logged.

Past its capacity a process that accepts every request collapses: each waits behind all the
others, clients give up, and the work done for them is wasted while new requests keep arriving
(the recommender at 1.75x its capacity answered none in time). With at most
``http_max_in_flight`` requests in the app, the next ones are answered 503 ``busy`` with
``Retry-After`` at once, and the admitted ones wait about the limit times a request's service
time (Little's law: capacity x acceptable wait, 400/s x 150 ms ~ 60; the default 64 kept the
recommender answering ~320/s at 1.25-1.75x, p50 ~200 ms; docs/operations.md). A request whose
body is still arriving is not counted (the body is read first, within the body timeout and the
body limit), so slow clients cannot fill the limit: they hold connections (``http_max_connections``).
Probes (``/healthz``, ``/readyz``) are never shed.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import ServiceUnavailable, TooManyRequests, problem_of, problem_response

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROBES = frozenset({"/healthz", "/readyz"})


class RateLimiter:
    """The limits of one service, from its settings (``""`` turns one off)."""

    def __init__(self, per_principal: str, per_source: str) -> None:
        self.per_principal: list[RateLimitItem] = parse_many(per_principal) if per_principal else []
        self.per_source: list[RateLimitItem] = parse_many(per_source) if per_source else []
        self.strategy = SlidingWindowCounterRateLimiter(MemoryStorage())

    def hit_principal(self, scope: Scope, sub: str, *, read: bool = False) -> None:
        """Count a write by ``sub`` (or, with ``read``, an expensive read such as an export);
        TooManyRequests when over a limit. Other reads are not counted."""
        if read or scope.get("method") in WRITES:
            self._hit(self.per_principal, "principal", sub)

    def hit_source(self, scope: Scope) -> None:
        """Count a write from the request's client address; TooManyRequests when over a limit."""
        client = scope.get("client")
        self._hit(self.per_source, "source", client[0] if client else "unknown")

    def _hit(self, items: list[RateLimitItem], kind: str, key: str) -> None:
        for item in items:
            if not self.strategy.hit(item, kind, key):
                reset_at, _remaining = self.strategy.get_window_stats(item, kind, key)
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise TooManyRequests(
                    "Too many requests; retry later.",
                    code="rate-limited",
                    headers={"Retry-After": str(retry_after)},
                )


class SourceRateLimit:
    """Pure ASGI: writes over the per-source limit are answered 429 before the app runs."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITES and self.limiter.per_source:
            try:
                self.limiter.hit_source(scope)
            except TooManyRequests as err:
                await problem_response(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class InFlightLimit:
    """Pure ASGI: at most ``limit`` HTTP requests in the app at once; the next ones are answered
    503 ``busy`` with ``Retry-After: 1`` before the app runs (probes excepted). A request with a
    body is counted once its body has arrived."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if _has_body(scope):
            try:
                receive = await _received(receive)
            except StarletteHTTPException as exc:  # over the body limit (BodyLimitMiddleware)
                await problem_response(problem_of(exc))(scope, receive, send)
                return
        if self.in_flight >= self.limit:
            busy = ServiceUnavailable("At capacity; retry in a moment.", code="busy", headers={"Retry-After": "1"})
            await problem_response(busy)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


async def _received(receive: Receive) -> Receive:
    """The whole body read now, then handed to the app as one message (or the disconnect that
    ended it, as it came)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            pending = [message]
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
            break

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
