"""HTTP API of reminders: read, set and stop your weekly reminder; your nudge handle."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from services.checkin.auth import CheckinConsented, Employee
from services.checkin.nudges import service
from services.checkin.nudges.schemas import NudgeHandle, NudgeRead, NudgeUpdate
from services.checkin.openapi import problems
from shared.db import SessionDep

router = APIRouter()


@router.get("/v1/me/nudges", tags=["nudges"], summary="Your reminder", responses=problems(401, 403, 404))
def get_nudges(caller: Employee, session: SessionDep) -> NudgeRead:
    """Your weekly reminder and when it is next due; 404 if none is set."""
    return service.get(session, caller.pseudonym)


@router.put("/v1/me/nudges", tags=["nudges"], summary="Set your reminder", responses=problems(401, 403, 422, 503))
def put_nudges(body: NudgeUpdate, caller: CheckinConsented, session: SessionDep) -> NudgeRead:
    """Opt in to (or change) a weekly reminder: weekday, local time, IANA time zone, optional quiet
    hours and snooze. Needs ``checkin`` consent; withdrawing it deletes the reminder."""
    return service.put(session, caller.pseudonym, body, datetime.now(UTC))


@router.delete(
    "/v1/me/nudges", status_code=204, tags=["nudges"], summary="Stop reminders", responses=problems(401, 403)
)
def delete_nudges(caller: Employee, session: SessionDep) -> Response:
    """Opt out: the schedule is deleted (idempotent)."""
    service.stop(session, caller.pseudonym)
    return Response(status_code=204)


@router.get("/v1/me/nudges/handle", tags=["nudges"], summary="Your nudge handle")
def get_handle(caller: Employee, request: Request, response: Response) -> NudgeHandle:
    """The id your reminders carry when they are sent to a chat app (Slack, Teams): link it there.

    It names you only to an app you give it to: it is not your employee id nor the platform's
    pseudonym, and reminders carry nothing else about you than your language and the due time.
    """
    response.headers["Cache-Control"] = "no-store"
    key = service.handle_key(request.app.state.settings.platform)
    return NudgeHandle(handle=service.nudge_handle(key, caller.pseudonym))
