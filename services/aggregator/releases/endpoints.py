"""Reporting API: stored releases as the caller's view allows (thin: authorise, read, shape)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.aggregator.access import ReportingView
from services.aggregator.forecasts import service as forecasts
from services.aggregator.releases import service
from services.aggregator.releases.schemas import ProgramMetricsRead, RollupsRead
from shared.auth import EmployeePrincipal
from shared.db import SessionDep
from shared.events.contribution import ISO_WEEK_PATTERN, Metric
from shared.events.hris import ORG_UNIT_PATTERN
from shared.pagination import PageQuery

router = APIRouter(tags=["reporting"])
Week = Annotated[str | None, Query(pattern=ISO_WEEK_PATTERN, description="ISO week, e.g. 2026-W05")]


@router.get("/v1/rollups", response_model=RollupsRead, summary="Released figures per org unit, metric and week")
def rollups(
    request: Request,
    view: ReportingView,
    session: SessionDep,
    paging: PageQuery,
    org_unit: Annotated[str | None, Query(pattern=ORG_UNIT_PATTERN)] = None,
    metric: Metric | None = None,
    from_: Annotated[str | None, Query(alias="from", pattern=ISO_WEEK_PATTERN)] = None,
    to: Week = None,
) -> RollupsRead:
    """``hr_analyst``: the organisation (k = 5 by default); ``manager``: their own subtree at
    k = 10 (a unit outside it is 403). Figures come from stored releases, so the same query always
    answers the same numbers; a suppressed cell says so, with its reason, never zero."""
    today = request.app.state.clock.now().date()
    return service.read_rollups(session, today, view, org_unit, metric, from_, to, paging)


@router.get("/v1/program-metrics", response_model=ProgramMetricsRead, summary="How the programme is doing")
def program_metrics(request: Request, view: ReportingView, session: SessionDep) -> ProgramMetricsRead:
    """Participation, resource engagement, EAP referrals, escalation acknowledgement and contact
    times, per top unit of the caller's view, as released under the same rules; and how the
    forecasts the view may see fared once their periods were released (the hit rate)."""
    today = request.app.state.clock.now().date()
    body = service.read_program_metrics(session, today, view)
    return body.model_copy(update={"forecasts": forecasts.scores(session, today, view)})


@router.get("/v1/me/team-view", response_model=RollupsRead, summary="What your employer sees about your team")
def team_view(
    _: EmployeePrincipal,
    session: SessionDep,
    paging: PageQuery,
    org_unit: Annotated[str, Query(pattern=ORG_UNIT_PATTERN, description="Your org unit.")],
    from_: Annotated[str | None, Query(alias="from", pattern=ISO_WEEK_PATTERN)] = None,
    to: Week = None,
) -> RollupsRead:
    """Exactly the stored organisation-wide figures (what HR sees) for ``org_unit`` and the units
    above it: nothing more. The aggregator holds no link from people to units, so the caller names
    their unit (the consent service's export says which it is)."""
    return service.read_team_view(session, org_unit, from_, to, paging)
