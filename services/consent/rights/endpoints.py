"""Employee routes for data-subject rights: export and access log (erasure: ``erasure/``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.consent.deps import BusDep, ContextDep
from services.consent.rights import service as rights
from services.consent.rights.schemas import AccessLogRead, ExportRead
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


@router.get("/access-log", summary="Who accessed my data", responses=problems(*AUTH))
async def my_access_log(
    principal: EmployeePrincipal, session: SessionDep, ctx: ContextDep, bus: BusDep, page: PageQuery
) -> AccessLogRead:
    """Every access to my data by a person, from every service's tamper-evident audit log,
    oldest first, in pages (``next_cursor``)."""
    return await rights.access_log(session, ctx, bus, principal.sub, page)
