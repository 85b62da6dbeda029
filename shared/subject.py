"""``CurrentSubject``: the calling employee as the platform names them (their pseudonym).

Every service computes the pseudonym from the token's ``sub`` with the pseudonym key; only the
consent service's directory can map it back. ``consented(purpose)`` adds the consent check an
endpoint needs: 503 while the consent projection is not synced (the gate cannot tell yet, so it
fails closed without pretending the answer is "no"), 403 ``consent-required`` when not granted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from shared.auth import EmployeePrincipal, Principal
from shared.crypto import pseudonym
from shared.errors import ConsentRequired, ServiceUnavailable


@dataclass(frozen=True)
class Subject:
    principal: Principal
    pseudonym: str


async def current_subject(request: Request, principal: EmployeePrincipal) -> Subject:
    platform = request.app.state.runtime.settings.platform
    return Subject(principal, pseudonym(platform.secret("pseudonym_key"), platform.tenant, principal.sub))


CurrentSubject = Annotated[Subject, Depends(current_subject)]


def gate_allows(request: Request, subject: Subject, purpose: str) -> bool | None:
    """True/False from the consent gate, or ``None`` while it is not synced."""
    gate = request.app.state.runtime.gate
    if gate is None or not gate.synced:
        return None
    return bool(gate.allowed(subject.pseudonym, purpose))


def consented(purpose: str) -> Callable[[Request, Subject], Awaitable[Subject]]:
    """A dependency: the current subject, if ``purpose`` is granted (503 while blind, else 403)."""

    async def guard(request: Request, subject: CurrentSubject) -> Subject:
        answer = gate_allows(request, subject, purpose)
        if answer is None:
            raise ServiceUnavailable("Consent state is not available yet; try again shortly.")
        if not answer:
            raise ConsentRequired(purpose)
        return subject

    return guard
