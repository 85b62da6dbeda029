"""Fairness audits (``fairness_audit`` purpose): self-declared attributes, exposure tallies,
and stored reports (the budget is the platform's release ledger, ``shared.release.ledger``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from services.recommender.columns import json_column, ts


class DeclaredAttribute(SQLModel, table=True):
    """One self-declared attribute (``prefer_not_to_say`` is a value like any other)."""

    __tablename__ = "declared_attribute"

    pseudonym: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(max_length=32)
    updated_at: datetime = ts()


class ExposureTally(SQLModel, table=True):
    """What one consenting person was shown in one audit window (an ISO week), per category:
    lists served, lists showing the category in the top K, and its position-discounted exposure."""

    __tablename__ = "exposure_tally"

    pseudonym: str = Field(primary_key=True, max_length=64)
    audit_week: str = Field(primary_key=True, max_length=8)
    lists: int = 0
    shown: dict[str, Any] = json_column()  # category -> lists showing it
    exposure: dict[str, Any] = json_column()  # category -> sum of 1/log2(1+rank)


class FairnessReport(SQLModel, table=True):
    """A released audit: stored once, served as stored, never re-drawn."""

    __tablename__ = "fairness_report"

    id: str = Field(primary_key=True, max_length=32)
    audit_week: str = Field(index=True, max_length=8)
    attribute: str = Field(max_length=32)
    created_at: datetime = ts()
    report: dict[str, Any] = json_column()
