"""Responses of ``GET /v1/insights``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from services.aggregator.forecasts.schemas import ForecastRead, ForecastWithheldRead


class TriggerRead(BaseModel):
    trigger_id: str
    kind: str
    label: str | None
    starts_on: date


class InsightRead(BaseModel):
    insight_id: str
    kind: Literal["drop", "drift"]
    org_unit: str
    metric: str
    iso_week: str
    change: float
    interval_95: tuple[float, float]
    trigger: TriggerRead | None
    suggestion_code: str
    suggestion: str


class InsightsRead(BaseModel):
    view: Literal["organisation", "manager"]
    lang: Literal["en", "es", "fr"]
    insights: list[Annotated[InsightRead | ForecastRead, Field(discriminator="kind")]]
    forecasts_withheld: list[ForecastWithheldRead] = []
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null on the last.")
