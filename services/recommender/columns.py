"""Column helpers shared by the recommender's tables (times are stored as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def json_column() -> Any:
    return Field(sa_column=Column(JSON, nullable=False))
