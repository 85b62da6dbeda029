"""Fairness audits: your self-declared attributes, and the released reports for HR."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.recommender.audits import repository as repo
from services.recommender.audits import service
from services.recommender.audits.schemas import AttributesRead, AttributesUpdate, FairnessReportList, FairnessReportRead
from services.recommender.deps import Ctx
from shared.auth import AdminPrincipal, Principal, Role, require_roles
from shared.db import SessionDep
from shared.errors import Conflict
from shared.openapi import problems
from shared.pagination import PageQuery, page
from shared.subject import CurrentSubject, Subject, consented, gate_allows

router = APIRouter(tags=["fairness audits"])
Auditing = Annotated[Subject, Depends(consented("fairness_audit"))]
AuditReader = Annotated[Principal, Depends(require_roles(Role.hr_analyst, Role.admin))]
Week = Annotated[str, Query(pattern=r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")]
Attribute = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


@router.get("/v1/me/attributes", response_model=AttributesRead, summary="Your self-declared attributes")
def get_attributes(request: Request, session: SessionDep, ctx: Ctx, subject: CurrentSubject) -> AttributesRead:
    """What you declared for fairness audits, and what may be declared (always optional)."""
    allowed = bool(gate_allows(request, subject, "fairness_audit"))
    return service.read(session, subject.pseudonym, allowed, ctx.settings.fairness_attributes)


@router.put(
    "/v1/me/attributes",
    response_model=AttributesRead,
    summary="Declare attributes for fairness audits",
    responses=problems(503),
)
def put_attributes(session: SessionDep, ctx: Ctx, subject: Auditing, body: AttributesUpdate) -> AttributesRead:
    """Needs the ``fairness_audit`` consent. Used only in noised group counts of audits, never
    to rank, and never shown to anyone as yours."""
    service.declare(session, subject.pseudonym, body, ctx.settings.fairness_attributes)
    session.flush()
    return service.read(session, subject.pseudonym, True, ctx.settings.fairness_attributes)


@router.delete("/v1/me/attributes", status_code=204, summary="Remove your declared attributes")
def delete_attributes(session: SessionDep, subject: CurrentSubject) -> Response:
    repo.delete_of(session, subject.pseudonym)
    return Response(status_code=204)


@router.get("/v1/audits/fairness", response_model=FairnessReportList, summary="Released fairness reports")
def list_reports(
    session: SessionDep,
    _: AuditReader,
    paging: PageQuery,
    attribute: Attribute | None = None,
) -> FairnessReportList:
    """hr_analyst and admin: reports as released (stored, never re-drawn), newest first."""
    after = paging.after(str)
    found = repo.reports(session, attribute=attribute, after=after[0] if after else None, limit=paging.limit + 1)
    rows, cursor = page(found, paging, lambda r: (r.id,))
    return FairnessReportList(items=[service.read_report(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/audits/fairness/run",
    status_code=201,
    response_model=FairnessReportRead,
    summary="Run an audit now",
    responses=problems(409),
)
def run_audit(session: SessionDep, ctx: Ctx, _: AdminPrincipal, week: Week, attribute: Attribute) -> FairnessReportRead:
    """admin: release the report of one ISO week and attribute now (the schedule does this for
    every configured attribute when a week ends). 409 when it exists or the week's budget is spent."""
    if attribute not in ctx.settings.fairness_attributes:
        raise Conflict("This attribute is not configured.")
    report = service.run(session, week, attribute, ctx.settings)
    if report is None:
        raise Conflict("This report exists already, or the week's privacy budget is spent.")
    return service.read_report(report)
