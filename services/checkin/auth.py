"""Who is calling, as the check-in service needs it: principal, pseudonym, consent.

The token is verified by ``shared.auth.get_principal``, the platform's one verification path
(no cache of verified tokens here: a second decoder of ``exp`` once turned ``exp = 10**400``
into a 500), and the caller named as ``shared.subject`` names it (its pseudonym, an HMAC derived
per request), each through one flat dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Role, authenticates
from shared.consent_gate import ConsentGate
from shared.errors import ServiceUnavailable
from shared.subject import Subject, any_subject, subject_with_role

current_caller = any_subject  # the verified caller and its pseudonym, whatever its roles
_employee = subject_with_role(Role.employee)
_counsellor = subject_with_role(Role.counsellor)


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
async def consented_caller(request: Request) -> Subject:
    # Role and token first (401/403), then the gate: 503 while blind, 403 naming the purpose.
    employee = await _employee(request)
    synced_gate(request).require(employee.pseudonym, "checkin")
    return employee


Employee = Annotated[Subject, Depends(_employee)]
Counsellor = Annotated[Subject, Depends(_counsellor)]
CheckinConsented = Annotated[Subject, Depends(consented_caller)]
"""An employee with current ``checkin`` consent (503 while the projection is not synced)."""
