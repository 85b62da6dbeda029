"""Employee routes for data-subject rights: export, erasure, access log."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Depends, Response, status

from services.consent import erasure, rights
from services.consent.deps import BusDep, ContextDep
from services.consent.schemas import AccessLogRead, ErasureAccepted, ErasureStatus, ExportRead
from shared.auth import EmployeePrincipal, limited_read
from shared.db import SessionDep
from shared.openapi import AUTH, problems
from shared.pagination import PageQuery

router = APIRouter(prefix="/v1/me", tags=["my data"])


@router.get("/export", summary="Export my data", responses=problems(*AUTH, 429), dependencies=[Depends(limited_read)])
async def export_my_data(principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, bus: BusDep) -> ExportRead:
    """One JSON document with what every service holds about me, gathered concurrently with a
    deadline. A service that does not answer in time is named under ``unavailable`` and
    ``complete`` is false."""
    return await rights.export(session, ctx, bus, principal.sub)


@router.delete(
    "",
    summary="Erase my data",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(*AUTH),
)
def erase_me(principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, response: Response) -> ErasureAccepted:
    """Erase my data everywhere. My consents are withdrawn in every service at once and my
    directory entry and contact details deleted here; every other service is asked to erase and
    acknowledges. Follow ``status_url`` until ``completed``."""
    accepted = erasure.request_erasure(session, ctx, principal.sub)
    response.headers["Location"] = accepted.status_url
    return accepted


@router.get("/erasure/{request_id}", summary="Erasure status", responses=problems(*AUTH, 404, 422))
def erasure_status(
    request_id: UUID, principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep
) -> ErasureStatus:
    """Per-service status of my erasure request."""
    return erasure.status(session, ctx, principal.sub, request_id)


@router.get("/access-log", summary="Who accessed my data", responses=problems(*AUTH))
async def my_access_log(
    principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, bus: BusDep, page: PageQuery
) -> AccessLogRead:
    """Every access to my data by a person, from every service's tamper-evident audit log,
    oldest first, in pages (``next_cursor``)."""
    return await rights.access_log(session, ctx, bus, principal.sub, page)
