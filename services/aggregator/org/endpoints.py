"""``GET /v1/org``: the tree, and which units are reportable for the caller."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.aggregator.access import ReportingView
from services.aggregator.org import service
from services.aggregator.org.schemas import OrgRead
from shared.db import SessionDep

router = APIRouter(tags=["reporting"])


@router.get("/v1/org", response_model=OrgRead, summary="The org tree and which units are reportable")
def org_tree(request: Request, view: ReportingView, session: SessionDep) -> OrgRead:
    """``hr_analyst``: every active unit; ``manager``: their own subtree. A unit is reportable when
    the latest stored release published at least one of its figures for this view."""
    return service.read_org(session, request.app.state.clock.now().date(), view)
