"""Who is calling, as the check-in service needs it: principal, pseudonym, consent.

Verifying a JWT costs ~100 us and ``shared.auth.get_principal`` runs in the thread pool (a JWKS
refresh may block); at check-in rates that is most of a request. A token, once verified, gives
the same answer until it expires, so verified tokens are cached (bounded, by exact token string,
only until their ``exp``); a miss is verified in a worker thread as before. The pseudonym is
derived once per cached token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, Role, TokenVerifier
from shared.consent_gate import ConsentGate
from shared.crypto import pseudonym
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

CACHE_SIZE = 50_000


@dataclass(frozen=True)
class Caller:
    principal: Principal
    pseudonym: str


class VerifiedTokens:
    """Bounded LRU of verified tokens -> caller, each kept only until its ``exp``."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> Caller | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if entry[0] <= time.time():
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return entry[1]

    def put(self, token: str, expires_at: float, caller: Caller) -> None:
        with self._lock:
            self._entries[token] = (expires_at, caller)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def _expiry(token: str) -> float:
    """``exp`` of a token that has just been verified (so its payload is known to be well-formed)."""
    segment = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return float(claims["exp"])


async def current_caller(request: Request) -> Caller:
    """The verified caller; 401 as ``shared.auth.get_principal`` would answer."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("A bearer token is required.")
    state = request.app.state
    cache: VerifiedTokens = state.checkin.tokens
    caller = cache.get(token)
    if caller is not None:
        return caller
    verifier: TokenVerifier = state.verifier
    principal = await asyncio.to_thread(verifier.verify, token)
    platform = state.settings.platform
    caller = Caller(principal, pseudonym(platform.secret("pseudonym_key"), platform.tenant, principal.sub))
    cache.put(token, _expiry(token), caller)
    return caller


# Each alias below is one flat dependency: FastAPI resolves nested dependencies anew on every
# request, which at check-in rates costs more than the checks themselves.


async def _with_role(request: Request, role: Role) -> Caller:
    caller = await current_caller(request)
    if role not in caller.principal.roles:
        raise Forbidden("Your role does not allow this action.")
    return caller


async def _employee(request: Request) -> Caller:
    return await _with_role(request, Role.employee)


async def _counsellor(request: Request) -> Caller:
    return await _with_role(request, Role.counsellor)


def synced_gate(request: Request) -> ConsentGate:
    """The consent projection, or 503: the gate fails closed, and "not synced" is not "no"."""
    runtime = getattr(request.app.state, "runtime", None)
    gate = getattr(runtime, "gate", None)
    if gate is None or not gate.synced:
        raise ServiceUnavailable(
            "Consent state is not available yet; please retry shortly.",
            code="consent-unavailable",
            headers={"Retry-After": "2"},
        )
    return gate


async def consented_caller(request: Request) -> Caller:
    # Role and token first (401/403), then the gate: 503 while blind, 403 naming the purpose.
    employee = await _employee(request)
    synced_gate(request).require(employee.pseudonym, "checkin")
    return employee


Employee = Annotated[Caller, Depends(_employee)]
Counsellor = Annotated[Caller, Depends(_counsellor)]
CheckinConsented = Annotated[Caller, Depends(consented_caller)]
"""An employee with current ``checkin`` consent (503 while the projection is not synced)."""
