"""HTTP API of the check-in service (thin: auth, consent, then one service call)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from services.checkin.auth import CheckinConsented, Employee
from services.checkin.checkins import instruments, screening, service
from services.checkin.checkins.schemas import (
    CheckinCreate,
    CheckinList,
    CheckinResult,
    StepCreate,
    StepResult,
)
from services.checkin.deps import Ctx
from services.checkin.openapi import problems
from shared.db import SessionDep
from shared.pagination import PageQuery

router = APIRouter()

CheckinId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Check-in id.")]


@router.post(
    "/v1/checkins",
    status_code=201,
    tags=["check-ins"],
    summary="Submit the weekly check-in",
    responses=problems(401, 403, 422, 503),
)
async def submit_checkin(body: CheckinCreate, caller: CheckinConsented, ctx: Ctx, request: Request) -> CheckinResult:
    """Needs ``checkin`` consent (403 names the missing purpose; 503 while consent state is not
    synced: the gate fails closed). Answers with your score and recent trend, ``next_step`` when
    a step-up form should follow (post it to ``next_step.post_to``), and crisis resources at once
    whenever risk screening fires, whatever your other consents. Stored encrypted under your data
    key and committed durably before this answer is sent."""
    locale = screening.resolve_locale(body.lang, body.country, request.headers.get("accept-language"))
    return await service.submit_checkin(ctx, request.app.state.runtime.gate, caller.pseudonym, body, locale)


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
