"""Forecasts as ``GET /v1/insights`` shows them (kind ``forecast``), and their scores in
``GET /v1/program-metrics``."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

WithheldReason = Literal["too_few_past_triggers", "within_noise", "not_reportable"]


class ForecastTriggerRead(BaseModel):
    trigger_id: str
    kind: str
    label: str | None
    starts_on: date
    ends_on: date


class ForecastOutcomeRead(BaseModel):
    result: Literal["hit", "miss", "unscorable"] = Field(
        description="hit: the released change lay beyond its noise on the adverse side; unscorable: "
        "the period's cells were not released."
    )
    observed_change: float | None
    within_interval: bool | None


class ForecastRead(BaseModel):
    kind: Literal["forecast"] = "forecast"
    forecast_id: str
    org_unit: str
    based_on: str = Field(description="The unit whose past releases it rests on: itself, or its parent.")
    metric: str
    trigger: ForecastTriggerRead
    advise_on: date = Field(description="When to act: two weeks before the start (or at once, if nearer).")
    expected_change: float
    interval_95: tuple[float, float] = Field(description="95% prediction interval of the period's change.")
    past_triggers: int = Field(description="How many past triggers of the same kind it rests on.")
    suggestion_code: str
    suggestion: str
    outcome: ForecastOutcomeRead | None = Field(description="Set once the period has been released.")


class ForecastWithheldRead(BaseModel):
    org_unit: str
    metric: str
    trigger_id: str
    starts_on: date
    reason: WithheldReason
    past_triggers: int


class ForecastScoresRead(BaseModel):
    scored: int = Field(description="Raised forecasts whose period has been released and scored.")
    hits: int
    misses: int
    unscorable: int
    within_interval: int
    hit_rate: float | None = Field(description="hits / (hits + misses); null before any is scored.")
