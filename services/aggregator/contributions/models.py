"""Sufficient statistics per (org unit, ISO week, metric), and the tokens of open weeks.

``Cell`` grows with units x weeks x metrics, never with contributions. ``PendingToken`` holds one
row per (week, metric, period token) only while the week is open, so a later contribution can
replace an earlier one and a retraction can remove it; the release deletes them.
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

HISTOGRAM_BINS = 10  # fixed bins over each metric's range


class Cell(SQLModel, table=True):
    __tablename__ = "contribution_cell"

    iso_week: str = Field(primary_key=True, max_length=8)
    metric: str = Field(primary_key=True, max_length=40)
    org_unit: str = Field(primary_key=True, max_length=64)
    count: int = 0
    total: float = 0.0
    histogram: str = Field(default="", max_length=400)  # comma-separated bin counts


class PendingToken(SQLModel, table=True):
    __tablename__ = "contribution_pending"
    __table_args__ = (Index("ix_contribution_pending_token", "iso_week", "period_token"),)

    iso_week: str = Field(primary_key=True, max_length=8)
    metric: str = Field(primary_key=True, max_length=40)
    period_token: str = Field(primary_key=True, max_length=64)
    org_unit: str = Field(max_length=64)
    value: float
