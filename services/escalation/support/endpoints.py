"""Employees' support requests: ask for a person to contact you, and follow your requests."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from services.escalation.cases import repository as repo
from services.escalation.cases import service, views
from services.escalation.cases.schemas import SupportRequestCreate, SupportRequestList, SupportRequestRead
from services.escalation.deps import Ctx, Employee
from services.escalation.openapi import problems
from shared.db import SessionDep
from shared.pagination import PageQuery, after_time
from shared.pagination import page as paged

router = APIRouter(prefix="/v1/me/support-requests", tags=["support"])


@router.post("", status_code=201, summary="Ask for someone to contact you", responses=problems(401, 403, 422))
def create(
    body: SupportRequestCreate, caller: Employee, ctx: Ctx, session: SessionDep, response: Response
) -> SupportRequestRead:
    """Always allowed, whatever your consents: your request is its own basis. Opens a confirmed
    case that pages the counsellors on call. Your note and contact details are sealed under your
    data key and shown only to the counsellor who takes your case (you see each read in your
    access log). If you gave contact details with the ``escalation`` consent, you need not repeat them."""
    case = service.open_from_request(session, ctx, caller.pseudonym, body, datetime.now(UTC))
    response.headers["Cache-Control"] = "no-store"
    return views.for_employee(case, ctx.settings.legal_hold_days)


@router.get("", summary="Your requests and cases about you", responses=problems(400, 401, 403, 422))
def list_mine(
    caller: Employee, ctx: Ctx, session: SessionDep, response: Response, page: PageQuery
) -> SupportRequestList:
    """Your support requests and any case opened about you, with their state and legal hold;
    newest first, in pages (``next_cursor``)."""
    response.headers["Cache-Control"] = "no-store"
    rows, next_cursor = paged(
        repo.cases_page(session, caller.pseudonym, page.limit + 1, after_time(page)),
        page,
        lambda c: (c.opened_at.isoformat(), c.id),
    )
    items = [views.for_employee(c, ctx.settings.legal_hold_days) for c in rows]
    return SupportRequestList(items=items, next_cursor=next_cursor)
