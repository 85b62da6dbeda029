"""Stored releases: computed once when a week closes, served as stored, never re-drawn."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class Release(SQLModel, table=True):
    __tablename__ = "release"

    iso_week: str = Field(primary_key=True, max_length=8)
    released_at: datetime
    k: int
    manager_k: int
    late_dropped: int = 0  # contributions and retractions that arrived after the release


class ReleasedCell(SQLModel, table=True):
    """One (week, metric, unit): its figures if released in either view, and each view's decision."""

    __tablename__ = "released_cell"

    iso_week: str = Field(primary_key=True, max_length=8)
    metric: str = Field(primary_key=True, max_length=40)
    org_unit: str = Field(primary_key=True, max_length=64)
    parent: str | None = Field(default=None, max_length=64)
    released: bool  # the organisation-wide (hr_analyst, employee team view) decision
    reason: str | None = Field(default=None, max_length=64)
    manager_released: bool  # the managers' decision (k = manager_k)
    manager_reason: str | None = Field(default=None, max_length=64)
    count: int | None = None
    count_scale: float | None = None
    mean: float | None = None
    mean_half_width: float | None = None
    sum_scale: float | None = None
