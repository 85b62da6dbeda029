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

from shared.auth import Principal, Role, authenticates, get_principal, require_roles
from shared.crypto import pseudonym
from shared.errors import ConsentRequired, ServiceUnavailable


@dataclass(frozen=True)
class Subject:
    principal: Principal
    pseudonym: str


def subject_of(request: Request, principal: Principal) -> Subject:
    """The verified ``principal`` with its pseudonym (an HMAC, derived per request)."""
    platform = request.app.state.settings.platform
    return Subject(principal, pseudonym(platform.secret("pseudonym_key"), platform.tenant, principal.sub))


async def any_subject(request: Request) -> Subject:
    """The verified caller, whatever its roles, with its pseudonym; 401 as ``get_principal``."""
    return subject_of(request, await get_principal(request))


def subject_with_role(role: Role) -> Callable[[Request], Awaitable[Subject]]:
    """A dependency: the caller as a :class:`Subject` if it holds ``role`` (401, then 403).

    Flat, as every dependency here: it calls the role guard itself instead of depending on it
    (FastAPI resolves each nested dependency anew per request, more than the checks cost)."""
    guard = require_roles(role)

    @authenticates
    async def subject(request: Request) -> Subject:
        return subject_of(request, await guard(request))

    return subject


current_subject = subject_with_role(Role.employee)
CurrentSubject = Annotated[Subject, Depends(current_subject)]


def gate_allows(request: Request, subject: Subject, purpose: str) -> bool | None:
    """True/False from the consent gate, or ``None`` while it is not synced."""
    gate = request.app.state.runtime.gate
    if gate is None or not gate.synced:
        return None
    return bool(gate.allowed(subject.pseudonym, purpose))


def consented(purpose: str) -> Callable[[Request], Awaitable[Subject]]:
    """A dependency: the current subject, if ``purpose`` is granted (503 while blind, else 403)."""

    @authenticates
    async def guard(request: Request) -> Subject:
        subject = await current_subject(request)
        answer = gate_allows(request, subject, purpose)
        if answer is None:
            raise ServiceUnavailable("Consent state is not available yet; try again shortly.")
        if not answer:
            raise ConsentRequired(purpose)
        return subject

    return guard
