"""HTTP API of the check-in service (thin: auth, consent, then one service call)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.exc import IntegrityError

from services.checkin import case_notes, instruments, nudges, repository, screening, service
from services.checkin.auth import CheckinConsented, Counsellor, Employee, consented_caller
from services.checkin.deps import CheckinContext, Ctx
from services.checkin.schemas import (
    CheckinCreate,
    CheckinList,
    CheckinResult,
    NoteOpen,
    NoteOpened,
    NudgeRead,
    NudgeUpdate,
    StepCreate,
    StepResult,
)
from shared import audit
from shared.db import SessionDep
from shared.errors import ServiceUnavailable
from shared.openapi import BEARER, parse_body, request_body
from shared.openapi import problems as shared_problems
from shared.pagination import PageQuery

router = APIRouter()
_WORDS = {
    "d409": "Conflicts with the check-in's state.",
    "d503": "Consent state is not available yet (the gate fails closed); retry shortly.",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The shared problem+json entries, in the check-in service's words."""
    return shared_problems(*codes, **_WORDS)


CheckinId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Check-in id.")]


@router.post(
    "/v1/checkins",
    status_code=201,
    tags=["check-ins"],
    summary="Submit the weekly check-in",
    response_model=CheckinResult,
    responses=problems(401, 403, 422, 503),
    openapi_extra={"requestBody": request_body(CheckinCreate), **BEARER},
)
async def submit_checkin(request: Request) -> Response:
    """Needs ``checkin`` consent (403 names the missing purpose; 503 while consent state is not
    synced: the gate fails closed). Answers with your score and recent trend, ``next_step`` when
    a step-up form should follow (post it to ``next_step.post_to``), and crisis resources at once
    whenever risk screening fires, whatever your other consents. Stored encrypted under your data
    key and committed durably before this answer is sent."""
    # The hot path: no FastAPI parameters (they cost more than the checks), the same checks in the
    # same order (401, 403 role, 503 blind gate, 403 consent, then 400/422 body), documented above.
    caller = await consented_caller(request)
    body = await parse_body(request, CheckinCreate)
    ctx: CheckinContext = request.app.state.checkin
    gate = request.app.state.runtime.gate
    locale = screening.resolve_locale(body.lang, body.country, request.headers.get("accept-language"))
    for attempt in range(2):
        key = ctx.keys.cached(caller.pseudonym)
        if key is None:
            key = await asyncio.to_thread(ctx.keys.get_or_create, ctx.writer.engine, caller.pseudonym)
        event_key = ctx.event_keys.cached(caller.pseudonym) or await ctx.event_keys.get_or_create(caller.pseudonym)
        prepared = service.prepare_checkin(body, key, gate, locale, ctx.period_key, event_key)
        try:
            written = await ctx.writer.write(prepared.write)
        except IntegrityError:
            # The cached key was destroyed meanwhile (an erasure): forget it and seal afresh once.
            ctx.keys.evict(caller.pseudonym)
            if attempt:
                raise ServiceUnavailable("The check-in could not be stored; please retry.") from None
            continue
        return Response(service.checkin_result(prepared, written), status_code=201, media_type="application/json")
    raise AssertionError("unreachable")  # pragma: no cover


@router.get("/v1/instruments", tags=["instruments"], summary="Check-in forms")
async def get_instruments(
    request: Request,
    lang: Annotated[str | None, Query(pattern=r"^[a-z]{2}(-[A-Za-z]{2})?$", description="en, es or fr")] = None,
) -> dict[str, Any]:
    """The weekly form (WHO-5, mood, note, "talk to someone") and the step-up forms, in ``lang``
    (else the first supported language of Accept-Language, else English; ``lang`` in the answer
    says which was served). Public: the forms hold nothing personal."""
    wanted = lang.split("-")[0] if lang else None
    chosen = wanted if wanted in screening.SUPPORTED_LANGS else None
    return instruments.forms(screening.resolve_locale(chosen, None, request.headers.get("accept-language")).lang)


@router.post(
    "/v1/checkins/{checkin_id}/steps",
    tags=["check-ins"],
    summary="Answer the step-up form a check-in asked for",
    responses=problems(401, 403, 404, 409, 422, 503),
)
def submit_step(
    checkin_id: CheckinId, body: StepCreate, caller: CheckinConsented, ctx: Ctx, session: SessionDep, request: Request
) -> StepResult:
    """Post the form named by the previous answer's ``next_step`` (``phq2_gad2``, then maybe
    ``phq9``); 409 if the check-in expects another form or none."""
    gate = request.app.state.runtime.gate
    return service.submit_step(session, ctx.keys, gate, caller.pseudonym, checkin_id, body, ctx.event_keys)


@router.get("/v1/me/checkins", tags=["check-ins"], summary="Your check-ins", responses=problems(401, 403))
def my_checkins(
    caller: Employee,
    ctx: Ctx,
    session: SessionDep,
    page: PageQuery,
) -> CheckinList:
    """Your own check-ins, newest first, decrypted for you only; in pages (``next_cursor``)."""
    return service.history_page(session, ctx.keys, caller.pseudonym, page)


@router.delete(
    "/v1/me/checkins/{checkin_id}",
    status_code=204,
    tags=["check-ins"],
    summary="Delete one of your check-ins",
    responses=problems(401, 403, 404),
)
def delete_my_checkin(checkin_id: CheckinId, caller: Employee, session: SessionDep) -> Response:
    """Deletes the check-in and the trend cache derived from it."""
    service.delete_checkin(session, caller.pseudonym, checkin_id)
    return Response(status_code=204)


@router.get("/v1/me/nudges", tags=["nudges"], summary="Your reminder", responses=problems(401, 403, 404))
def get_nudges(caller: Employee, session: SessionDep) -> NudgeRead:
    """Your weekly reminder and when it is next due; 404 if none is set."""
    return nudges.get(session, caller.pseudonym)


@router.put("/v1/me/nudges", tags=["nudges"], summary="Set your reminder", responses=problems(401, 403, 422, 503))
def put_nudges(body: NudgeUpdate, caller: CheckinConsented, session: SessionDep) -> NudgeRead:
    """Opt in to (or change) a weekly reminder: weekday, local time, IANA time zone, optional quiet
    hours and snooze. Needs ``checkin`` consent; withdrawing it deletes the reminder."""
    return nudges.put(session, caller.pseudonym, body, datetime.now(UTC))


@router.delete(
    "/v1/me/nudges", status_code=204, tags=["nudges"], summary="Stop reminders", responses=problems(401, 403)
)
def delete_nudges(caller: Employee, session: SessionDep) -> Response:
    """Opt out: the schedule is deleted (idempotent)."""
    repository.delete_nudge(session, caller.pseudonym)
    return Response(status_code=204)


@router.post(
    "/v1/shared-notes/open",
    tags=["counsellors"],
    summary="Read the note an employee shared with a case you hold",
    responses=problems(401, 403, 404, 409, 410, 422, 503),
)
async def open_shared_note(
    body: NoteOpen, caller: Counsellor, ctx: Ctx, session: SessionDep, request: Request
) -> NoteOpened:
    """For the counsellor who holds the case (``POST /v1/cases/{id}/ack`` on the escalation
    service): opens the note the employee shared with it. Needs the employee's current
    ``escalation`` consent or their explicit request for contact (403 ``consent-required``); 403
    ``case-not-held`` for anyone else. Every read is written to the hash-chained audit log the
    employee can read; 410 once the employee's data was erased (their key is gone)."""
    runtime = request.app.state.runtime
    reply = case_notes.authorise(await case_notes.ask(runtime, body.case_id, caller.pseudonym), runtime.gate)
    assert reply.pseudonym is not None and reply.checkin_ref is not None
    text = service.open_shared_note(session, ctx.keys, reply.pseudonym, reply.checkin_ref, reply.note)
    audit.append(
        session,
        actor=caller.pseudonym,
        actor_role="counsellor",
        subject=reply.pseudonym,
        action="checkin.note.read",
        purpose="escalation",
    )
    return NoteOpened(text=text)
