"""Abuse limits on writes: per verified principal and per client address, with ``limits``.

Every write (POST, PUT, PATCH, DELETE) counts against its source address before anything else
runs (:class:`SourceRateLimit`, so unauthenticated floods and signed webhooks are limited too), and
against its caller once the token is verified (``shared.auth.get_principal`` calls
:meth:`RateLimiter.hit_principal`). Over a limit: 429 problem+json with ``Retry-After``.

Counters live in the process (``limits``' memory storage, sliding window counters): each replica
limits on its own, so a deployment's effective limit is the setting times its replicas. Behind an
ingress, set uvicorn's forwarded-IP handling (``FORWARDED_ALLOW_IPS``) or limit per source at the
ingress, or every caller shares the ingress's address. Keys are held in memory only, never logged.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import TooManyRequests, problem_response

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
