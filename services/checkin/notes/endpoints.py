"""HTTP API of shared notes: a counsellor holding a case opens the note shared with it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.checkin.auth import Counsellor
from services.checkin.deps import Ctx
from services.checkin.notes import service
from services.checkin.notes.schemas import NoteOpen, NoteOpened
from services.checkin.openapi import problems
from shared.db import SessionDep

router = APIRouter()


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
    text = await service.read_note(session, ctx.keys, request.app.state.runtime, body.case_id, caller.pseudonym)
    return NoteOpened(text=text)
