"""Time helpers. Datetimes are aware UTC everywhere (sqlmodel's column type refuses naive ones;
the columns are ``timestamp with time zone`` on PostgreSQL, UTC text on SQLite)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared import clock


def utcnow() -> datetime:
    """Now, as check-in dates its check-ins (the demo clock in embedded mode: ``shared.clock``)."""
    return clock.now()


def aware(value: datetime) -> datetime:
    """A stored value as aware UTC (what the column type returns; a no-op kept for clarity)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_week(day: date) -> str:
    """``2026-W05``: zero-padded, so ISO weeks sort as strings."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week: the start of a contribution period."""
    return day - timedelta(days=day.weekday())
