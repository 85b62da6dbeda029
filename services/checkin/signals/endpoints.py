"""``POST /v1/signals``: work-pattern metadata from an integration, in batches (see ``signals``).

The route parses its body with ``shared.openapi.parse_body``: the contract is strict, and only
JSON-mode validation accepts a date as the string JSON carries (FastAPI validates the parsed
Python objects, where strict mode refuses it). Its body limit is its own
(``signals_max_body_bytes``, default 512 KiB, ``ServiceSpec.body_limits``); the service's 64 KiB
limit stays in force for every other route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json

from services.checkin.auth import current_caller, synced_gate
from services.checkin.clock import utcnow
from services.checkin.config import CheckinSettings
from services.checkin.signals.schemas import MAX_RECORDS, SignalBatch, SignalsAccepted
from services.checkin.signals.service import Pseudonymiser, prepare
from services.checkin.signals.writer import SignalWriter
from shared.auth import Role
from shared.db import make_engine
from shared.errors import Forbidden, PayloadTooLarge
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
    prepared = prepare(batch.records, state.pseudonymise, gate, utcnow(), state.close_hours)
    await state.writer.write(prepared.rows)
    return Response(to_json(prepared.answer()), media_type="application/json")
