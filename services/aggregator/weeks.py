"""ISO weeks, the aggregator's periods (``2026-W05``: zero-padded, so they sort as strings)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(week: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week."""
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    return monday, monday + timedelta(days=6)


def closes_at(week: str, grace: timedelta) -> datetime:
    """When the week's release is due: the end of its Sunday (UTC) plus the grace."""
    _, sunday = week_bounds(week)
    return datetime(sunday.year, sunday.month, sunday.day, tzinfo=UTC) + timedelta(days=1) + grace


def previous(week: str) -> str:
    return week_of(week_bounds(week)[0] - timedelta(days=7))
