"""Data-subject rights across the platform: export and access log (request/reply to every
service, concurrently, with a deadline). Erasure is ``services.consent.erasure``.

A service that does not answer an export or access-log request in time is named under
``unavailable``: the document says it is incomplete rather than silently leaving data out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.errors import NoRespondersError
from pydantic import ValidationError
from sqlmodel import Session

from services.consent.clock import as_utc, utcnow
from services.consent.consents import service
from services.consent.deps import ConsentContext
from services.consent.directory import service as directory
from services.consent.erasure.service import erasures_export
from services.consent.hris import profile
from services.consent.rights.schemas import AccessEntry, AccessLogRead, ExportRead, Unavailable
from shared import audit
from shared.bus.connection import Bus
from shared.events.subject import SubjectDataReply, SubjectDataRequest
from shared.pagination import PageRequest, page
from shared.topology import SUBJECT_REQUEST_RESPONDERS, access_log_subject, export_subject

NAME = "consent"

Collected = tuple[dict[str, dict[str, Any]], list[Unavailable]]


async def collect(bus: Bus, subject_for: Callable[[str], str], subject: str, timeout: float) -> Collected:
    """Ask every other service at once; each answer, or why there was none."""
    request = SubjectDataRequest(pseudonym=subject)

    async def ask(svc: str) -> tuple[str, dict[str, Any] | None, str | None]:
        try:
            raw = await bus.request(subject_for(svc), request, timeout=timeout)
        except TimeoutError:
            return svc, None, "timeout"
        except NoRespondersError:
            return svc, None, "no_responders"
        except Exception:  # noqa: BLE001 - disconnected or refused: the service is unavailable
            return svc, None, "error"
        try:
            reply = SubjectDataReply.model_validate_json(raw)
        except ValidationError:
            return svc, None, "malformed"
        if reply.service != svc:
            return svc, None, "malformed"
        if set(reply.data) == {"error"}:  # shared.app answers a failure with its error type only
            # A service whose audit chain does not verify says so: the log it holds was rewritten.
            return svc, None, "integrity_failed" if reply.data["error"] == "ChainBroken" else "error"
        return svc, reply.data, None

    answers = await asyncio.gather(*(ask(svc) for svc in SUBJECT_REQUEST_RESPONDERS))
    data = {svc: body for svc, body, _ in answers if body is not None}
    missing = [Unavailable(service=svc, reason=why) for svc, _, why in answers if why is not None]  # type: ignore[arg-type]
    return data, missing


def own_export(session: Session, ctx: ConsentContext, employee_id: str) -> dict[str, Any]:
    """Everything this service holds about the subject."""
    subject = ctx.pseudonym(employee_id)
    return {
        "directory": directory.directory_export(session, ctx, subject),
        "consents": service.consents(session, ctx, employee_id, "en").model_dump(mode="json")["consents"],
        "history": service.history(session, ctx, employee_id).model_dump(mode="json")["entries"],
        "erasure_requests": erasures_export(session, ctx, subject),
        "hris": profile.export_of(session, subject),  # org unit and profile the HRIS sent
    }


async def export(session: Session, ctx: ConsentContext, bus: Bus, employee_id: str) -> ExportRead:
    own = await asyncio.to_thread(own_export, session, ctx, employee_id)
    timeout = ctx.settings.subject_request_timeout_seconds
    others, unavailable = await collect(bus, export_subject, ctx.pseudonym(employee_id), timeout)
    return ExportRead(
        generated_at=utcnow(),
        complete=not unavailable,
        services={NAME: own, **others},
        unavailable=unavailable,
    )


def own_access_log(session: Session, subject: str) -> list[AccessEntry]:
    audit.verified(session)  # every read verifies the whole keyed chain first
    return [
        AccessEntry(
            service=NAME, at=as_utc(e.at), actor=e.actor, actor_role=e.actor_role, action=e.action, purpose=e.purpose
        )
        for e in audit.entries_for(session, subject)
    ]


async def access_log(
    session: Session, ctx: ConsentContext, bus: Bus, employee_id: str, request: PageRequest
) -> AccessLogRead:
    """One page of every access to the subject's data by a person, from every service's audit log."""
    subject = ctx.pseudonym(employee_id)
    try:
        entries = await asyncio.to_thread(own_access_log, session, subject)
        own_broken: list[Unavailable] = []
    except audit.ChainBroken:
        entries, own_broken = [], [Unavailable(service=NAME, reason="integrity_failed")]
    timeout = ctx.settings.subject_request_timeout_seconds
    answers, unavailable = await collect(bus, access_log_subject, subject, timeout)
    for svc, data in answers.items():
        try:
            entries += [AccessEntry.model_validate({**e, "service": svc}) for e in data.get("entries", [])]
        except (ValidationError, TypeError):
            unavailable.append(Unavailable(service=svc, reason="malformed"))
    unavailable = own_broken + unavailable
    items, next_cursor = access_page(entries, request)
    return AccessLogRead(complete=not unavailable, entries=items, unavailable=unavailable, next_cursor=next_cursor)


AccessKey = tuple[datetime, str, int]


def access_page(entries: list[AccessEntry], request: PageRequest) -> tuple[list[AccessEntry], str | None]:
    """One page of the merged log, in (time, service) order.

    The log is gathered from every service on each request, so the page is cut here, not in a
    query. The key adds, to time and service, the entry's rank among that service's entries at
    the same instant (they arrive in the order of the service's audit chain), which makes it
    unique and stable while logs only grow.
    """
    after = request.after(str, str, int)
    start: AccessKey | None = (datetime.fromisoformat(after[0]), after[1], after[2]) if after else None
    keyed: list[tuple[AccessKey, AccessEntry]] = []
    ranks: dict[tuple[datetime, str], int] = {}
    for entry in sorted(entries, key=lambda e: (e.at, e.service)):
        rank = ranks[(entry.at, entry.service)] = ranks.get((entry.at, entry.service), -1) + 1
        keyed.append(((entry.at, entry.service, rank), entry))
    rest = [item for item in keyed if start is None or item[0] > start]
    items, next_cursor = page(rest[: request.limit + 1], request, lambda item: (item[0][0].isoformat(), *item[0][1:]))
    return [entry for _, entry in items], next_cursor
