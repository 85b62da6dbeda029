"""Who is calling, as the check-in service needs it: principal, pseudonym, consent.

The token is verified by ``shared.auth.get_principal``, the platform's one verification path
(no cache of verified tokens here: a second decoder of ``exp`` once turned ``exp = 10**400``
into a 500). The pseudonym is an HMAC, derived per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, Role, authenticates, get_principal
from shared.consent_gate import ConsentGate
from shared.crypto import pseudonym
from shared.errors import Forbidden, ServiceUnavailable


@dataclass(frozen=True)
class Caller:
    principal: Principal
    pseudonym: str


async def current_caller(request: Request) -> Caller:
    """The verified caller and its pseudonym; 401 as ``shared.auth.get_principal`` answers."""
    principal = await get_principal(request)
    platform = request.app.state.settings.platform
    return Caller(principal, pseudonym(platform.secret("pseudonym_key"), platform.tenant, principal.sub))


# Each alias below is one flat dependency: FastAPI resolves nested dependencies anew on every
# request, which at check-in rates costs more than the checks themselves.


async def _with_role(request: Request, role: Role) -> Caller:
    caller = await current_caller(request)
    if role not in caller.principal.roles:
        raise Forbidden("Your role does not allow this action.")
    return caller


@authenticates
async def _employee(request: Request) -> Caller:
    return await _with_role(request, Role.employee)


@authenticates
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


@authenticates
async def consented_caller(request: Request) -> Caller:
    # Role and token first (401/403), then the gate: 503 while blind, 403 naming the purpose.
    employee = await _employee(request)
    synced_gate(request).require(employee.pseudonym, "checkin")
    return employee


Employee = Annotated[Caller, Depends(_employee)]
Counsellor = Annotated[Caller, Depends(_counsellor)]
CheckinConsented = Annotated[Caller, Depends(consented_caller)]
"""An employee with current ``checkin`` consent (503 while the projection is not synced)."""
