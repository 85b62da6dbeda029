"""Insights found in released series (nothing here was not already released)."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class Insight(SQLModel, table=True):
    __tablename__ = "insight"

    insight_id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)  # drop | drift
    org_unit: str = Field(max_length=64, index=True)
    metric: str = Field(max_length=40)
    iso_week: str = Field(max_length=8, index=True)
    change: float
    change_low: float
    change_high: float
    manager_visible: bool  # both weeks' cells were released in the managers' view too
    trigger_id: str | None = Field(default=None, max_length=64)
    trigger_kind: str | None = Field(default=None, max_length=32)
    trigger_label: str | None = Field(default=None, max_length=80)
    trigger_starts_on: date | None = None
    suggestion: str = Field(max_length=48)
    detected_at: datetime
