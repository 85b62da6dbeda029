"""``POST /v1/signals``: work-pattern metadata from an integration, in batches (see ``signals``).

Like the check-in POST, this route parses its body by hand (FastAPI's parameter machinery would
validate a 1,000-record list through Python objects) and writes through a group-commit writer.
Its body limit is its own (``signals_max_body_bytes``, default 512 KiB): the service's 64 KiB
limit stays in force for every other route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from services.checkin.auth import current_caller, synced_gate
from services.checkin.clock import utcnow
from services.checkin.config import CheckinSettings
from services.checkin.signals import MAX_RECORDS, Pseudonymiser, SignalBatch, SignalsAccepted, prepare
from services.checkin.signals_writer import SignalWriter
from shared.auth import Role
from shared.db import make_engine
from shared.errors import BodyLimitMiddleware, Forbidden, PayloadTooLarge
from shared.openapi import BEARER, parse_body, problems, request_body

PATH = "/v1/signals"
router = APIRouter()


@dataclass
class SignalsState:
    """The route's long-lived parts (``app.state.signals``)."""

    writer: SignalWriter
    pseudonymise: Pseudonymiser
    close_hours: float

    @classmethod
    def create(cls, settings: CheckinSettings) -> SignalsState:
        assert settings.database_url is not None
        platform = settings.platform
        return cls(
            writer=SignalWriter(make_engine(settings.database_url, pool_size=1)),
            pseudonymise=Pseudonymiser(platform.secret("pseudonym_key"), platform.tenant),
            close_hours=settings.signals_close_hours,
        )

    async def stop(self, *_rt: Any) -> None:
        await self.writer.stop()
        self.writer.engine.dispose()


async def _parse(request: Request) -> SignalBatch:
    try:
        return await parse_body(request, SignalBatch)
    except RequestValidationError as exc:
        if any(e["type"] == "too_long" and tuple(e["loc"]) == ("body", "records") for e in exc.errors()):
            raise PayloadTooLarge(f"A batch holds at most {MAX_RECORDS:,} records.", code="batch-too-large") from None
        raise


@router.post(
    PATH,
    tags=["integrations"],
    summary="Post daily work-pattern metadata",
    response_model=SignalsAccepted,
    responses=problems(
        400,
        401,
        403,
        413,
        422,
        503,
        d403="Only an integration may post signals.",
        d413=f"The body is over the limit, or the batch holds more than {MAX_RECORDS:,} records.",
        d422="The batch failed validation; nothing was stored.",
        d503="Consent state is not available yet (the gate fails closed); retry shortly.",
    ),
    openapi_extra={"requestBody": request_body(SignalBatch), **BEARER},
)
async def post_signals(request: Request) -> Response:
    """For integrations (role ``integration``): up to 1,000 per-person daily records of metadata
    (never content). Records of people without current ``work_patterns`` consent are dropped at
    once and only counted, as are records for a week already closed; the rest are pseudonymised,
    stored durably before this answer, and leave the service only as weekly de-identified
    contributions. Re-sending an employee-day replaces it. Any invalid record rejects the whole
    batch (422, nothing stored)."""
    caller = await current_caller(request)
    if Role.integration not in caller.principal.roles:
        raise Forbidden("Only an integration may post signals.")
    gate = synced_gate(request)
    batch = await _parse(request)
    state: SignalsState = request.app.state.signals
    prepared = prepare(
        batch.records, state.pseudonymise, gate, utcnow(), state.close_hours, day_as_text=state.writer.sqlite
    )
    await state.writer.write(prepared.rows)
    return Response(to_json(prepared.answer()), media_type="application/json")


class _RouteBodyLimit:
    """The service's body limit, with a larger one for the signals route only."""

    def __init__(self, app: ASGIApp, max_bytes: int, signals_max_bytes: int) -> None:
        self.default = BodyLimitMiddleware(app, max_bytes)
        self.signals = BodyLimitMiddleware(app, signals_max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.signals if scope["type"] == "http" and scope.get("path") == PATH else self.default
        await limit(scope, receive, send)


def widen_body_limit(app: FastAPI, settings: CheckinSettings) -> None:
    """Swap the app's ``BodyLimitMiddleware`` for one that lets signal batches through."""
    stack = app.user_middleware
    for i, entry in enumerate(stack):
        if entry.cls is BodyLimitMiddleware:
            stack[i] = Middleware(
                _RouteBodyLimit,  # type: ignore[arg-type]
                max_bytes=settings.max_body_bytes,
                signals_max_bytes=settings.signals_max_body_bytes,
            )
            return
    raise RuntimeError("the app has no body limit to widen")
