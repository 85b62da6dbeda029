"""``GET /v1/insights``: changes in released series, with the trigger and a suggestion."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from services.aggregator.access import ReportingView
from services.aggregator.forecasts import service as forecasts
from services.aggregator.insights import service
from services.aggregator.insights.schemas import InsightsRead
from shared.db import SessionDep

router = APIRouter(tags=["reporting"])


@router.get("/v1/insights", response_model=InsightsRead, summary="Detected changes and suggested interventions")
def insights(
    request: Request, view: ReportingView, session: SessionDep, lang: Literal["en", "es", "fr"] = "en"
) -> InsightsRead:
    """``hr_analyst``: every insight; ``manager``: their subtree's, and only where both weeks
    compared were released at the managers' k. Suggestions come from the playbook in ``lang``.
    Forecasts (kind ``forecast``, first) are expected changes before announced triggers, from
    released series only; ``forecasts_withheld`` says why a unit got none."""
    today, book = request.app.state.clock.now().date(), request.app.state.playbook
    found = service.read(session, today, view, lang, book)
    ahead, withheld = forecasts.read(session, today, view, lang, book)
    return found.model_copy(update={"insights": [*ahead, *found.insights], "forecasts_withheld": withheld})
