"""Forecasts: one assessment per (upcoming trigger, unit, metric), raised or withheld with a reason,
scored once the period has been released. Everything here derives from stored releases."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class Forecast(SQLModel, table=True):
    __tablename__ = "forecast"

    trigger_id: str = Field(primary_key=True, max_length=64)
    org_unit: str = Field(primary_key=True, max_length=64)
    metric: str = Field(primary_key=True, max_length=40)
    forecast_id: str = Field(max_length=32, unique=True)
    # raised | too_few_past_triggers | within_noise | not_reportable
    status: str = Field(max_length=32, index=True)
    based_on: str = Field(max_length=64)  # the unit, or its parent when the unit is too new
    trigger_kind: str = Field(max_length=32)
    trigger_label: str | None = Field(default=None, max_length=80)
    starts_on: date
    ends_on: date
    advise_on: date
    past_triggers: int
    expected_change: float | None = None
    change_low: float | None = None
    change_high: float | None = None
    manager_visible: bool = False  # every cell it looked at, and the unit's latest, released at k = 10
    suggestion: str = Field(max_length=48)
    assessed_week: str = Field(max_length=8)  # the latest release it was computed from
    assessed_at: datetime
    # Scoring, once the period's weeks are released: hit | miss | unscorable
    outcome: str | None = Field(default=None, max_length=16)
    observed_change: float | None = None
    within_interval: bool | None = None
    scored_at: datetime | None = None
