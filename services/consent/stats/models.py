"""Stored releases of consent rates: computed once per period, then replayed.

``ConsentStatsMembership`` keeps who was in each released cell (pseudonyms, and who granted each
purpose) so the next release can refuse to differ from it by fewer than k people. It is personal
data like the directory: erasure removes the subject from every stored set.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

# The org unit of the tenant-wide cell: a root above the org tree (its own members have no unit).
TENANT = "*"


class ConsentStatsRelease(SQLModel, table=True):
    __tablename__ = "consent_stats_release"

    period: str = Field(primary_key=True, max_length=16)
    released_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    k: int


class ConsentStatsCell(SQLModel, table=True):
    """One unit (``*``: the whole tenant) in one release; figures only when released."""

    __tablename__ = "consent_stats_cell"

    period: str = Field(primary_key=True, max_length=16)
    org_unit: str = Field(primary_key=True, max_length=64)
    parent: str | None = Field(default=None, max_length=64)
    released: bool
    reason: str | None = Field(default=None, max_length=64)
    replayed_from: str | None = Field(default=None, max_length=16)  # unchanged since that release
    group_size: int | None = None
    size_scale: float | None = None
    rates: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON purpose -> [rate, half]


class ConsentStatsMembership(SQLModel, table=True):
    __tablename__ = "consent_stats_membership"

    period: str = Field(primary_key=True, max_length=16)
    org_unit: str = Field(primary_key=True, max_length=64)
    set_name: str = Field(primary_key=True, max_length=40)
    members: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of pseudonyms
