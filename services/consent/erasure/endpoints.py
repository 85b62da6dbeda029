"""Employee routes of erasure: erase me everywhere, and follow the request."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from services.consent.deps import ContextDep
from services.consent.erasure import service as erasure
from services.consent.erasure.schemas import ErasureAccepted, ErasureStatus
from shared.auth import EmployeePrincipal
from shared.db import SessionDep
from shared.openapi import AUTH, problems

router = APIRouter(prefix="/v1/me", tags=["my data"])


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
