"""``GET /v1/insights``: changes in released series, with the trigger and a suggestion."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from services.aggregator.access import ReportingView
from services.aggregator.insights import service
from services.aggregator.insights.schemas import InsightsRead
from shared.db import SessionDep
from shared.pagination import PageQuery

router = APIRouter(tags=["reporting"])


@router.get("/v1/insights", response_model=InsightsRead, summary="Detected changes and suggested interventions")
def insights(
    request: Request,
    view: ReportingView,
    session: SessionDep,
    paging: PageQuery,
    lang: Literal["en", "es", "fr"] = "en",
) -> InsightsRead:
    """``hr_analyst``: every insight; ``manager``: their subtree's, and only where both weeks
    compared were released at the managers' k. Suggestions come from the playbook in ``lang``.
    Forecasts (kind ``forecast``, first) are expected changes before announced triggers, from
    released series only; ``forecasts_withheld`` says why a unit got none. Cursor-paged: a page
    holds up to ``limit`` entries across ``insights`` and ``forecasts_withheld``."""
    today, book = request.app.state.clock.now().date(), request.app.state.playbook
    return service.read(session, today, view, lang, book, paging)
