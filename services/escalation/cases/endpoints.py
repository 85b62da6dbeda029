"""Counsellors' case API: the queue, a case, and the actions on it (``counsellor`` role only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path

from services.escalation.cases import contact, service, views
from services.escalation.cases import repository as repo
from services.escalation.cases.models import CLOSED_STATES, OPEN_STATES
from services.escalation.cases.schemas import CaseList, CaseRead, Confirmed, Dismissal, NoteCreate, Resolution
from services.escalation.deps import Counsellor, Ctx
from services.escalation.openapi import problems
from shared.db import SessionDep
from shared.errors import NotFound
from shared.pagination import PageQuery, cursor_time
from shared.pagination import page as paged

router = APIRouter(prefix="/v1/cases", tags=["cases"])
CaseId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Case id.")]
ERRORS = problems(401, 403, 404, 409, 422)


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("", summary="The case queue", responses=problems(400, 401, 403, 422))
def list_cases(
    caller: Counsellor,
    session: SessionDep,
    page: PageQuery,
    state: Literal["open", "closed"] = "open",
) -> CaseList:
    """Open (or closed) cases, imminent first, then high, then moderate; oldest first within each;
    in pages (``next_cursor``)."""
    after = page.after(int, str, str)
    rows, next_cursor = paged(
        repo.queue(
            session,
            OPEN_STATES if state == "open" else CLOSED_STATES,
            page.limit + 1,
            (after[0], cursor_time(after[1]), after[2]) if after else None,
        ),
        page,
        lambda c: (c.severity_rank, c.opened_at.isoformat(), c.id),
    )
    return CaseList(items=[views.summary(c, caller.pseudonym) for c in rows], next_cursor=next_cursor)


@router.get("/{case_id}", summary="One case and its history", responses=ERRORS)
def get_case(case_id: CaseId, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    """The holder also sees notes and the employee's words (each read of the latter is audited)."""
    case = repo.lock_case(session, case_id)
    if case is None:
        raise NotFound("No such case.")
    return views.detail(session, ctx, case, caller.pseudonym)


@router.post("/{case_id}/ack", summary="Acknowledge: take the case, stop the paging", responses=ERRORS)
def ack(case_id: CaseId, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    case = service.acknowledge(session, case_id, caller.pseudonym, _now(), ctx)
    return views.detail(session, ctx, case, caller.pseudonym)


@router.post(
    "/{case_id}/confirm",
    summary="Confirm outreach and get the contact details",
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def confirm(case_id: CaseId, caller: Counsellor, ctx: Ctx, session: SessionDep) -> Confirmed:
    """Only the holder. Turns a proposed case into a confirmed one (a confirmed one stays so) and
    answers with the employee's contact details, fetched now and not kept: from the support
    request if it carried them, else from the consent service's directory (only while the
    ``escalation`` consent holds). Each release is in the employee's access log."""
    case = service.check_confirm(session, case_id, caller.pseudonym)
    details = contact.given_with_request(session, ctx, case)
    source = "request" if details else "none"
    if details:
        service.audit_read(session, case, caller.pseudonym, "contact.read")
    else:
        reply = await contact.from_directory(ctx, case, caller.pseudonym)
        if reply.outcome == "released":
            details, source = reply.contact, "consent_directory"
    case = service.confirm(session, case, caller.pseudonym, _now(), source)
    return Confirmed(case=views.detail(session, ctx, case, caller.pseudonym), contact=details, contact_source=source)  # type: ignore[arg-type]


@router.post("/{case_id}/dismiss", summary="Dismiss (a proposed or confirmed case)", responses=ERRORS)
def dismiss(case_id: CaseId, body: Dismissal, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    case = service.dismiss(session, ctx, case_id, caller.pseudonym, body, _now())
    return views.detail(session, ctx, case, caller.pseudonym)


@router.post("/{case_id}/contacted", summary="The employee was reached", responses=ERRORS)
def contacted(case_id: CaseId, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    case = service.mark_contacted(session, case_id, caller.pseudonym, _now(), ctx)
    return views.detail(session, ctx, case, caller.pseudonym)


@router.post("/{case_id}/resolve", summary="Resolve (a confirmed or contacted case)", responses=ERRORS)
def resolve(case_id: CaseId, body: Resolution, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    case = service.resolve(session, ctx, case_id, caller.pseudonym, body, _now())
    return views.detail(session, ctx, case, caller.pseudonym)


@router.post("/{case_id}/notes", summary="Add a note (sealed under the employee's data key)", responses=ERRORS)
def add_note(case_id: CaseId, body: NoteCreate, caller: Counsellor, ctx: Ctx, session: SessionDep) -> CaseRead:
    case = service.add_note(session, ctx, case_id, caller.pseudonym, body.text, _now())
    return views.detail(session, ctx, case, caller.pseudonym)
