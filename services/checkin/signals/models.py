"""Work-pattern signal days and closed weeks (created by migrations/versions/0004_signals.py)."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Field, SQLModel


class SignalDay(SQLModel, table=True):
    """One subject's work-pattern metadata for one day (``POST /v1/signals``, ``work_patterns``).

    Numbers only, never content. Kept only until the day's ISO week closes and is reduced to weekly
    contributions (``signals.tasks``); keyed by (day, pseudonym) so that ingest appends near the
    end of the index and a week is one key range. A re-sent employee-day replaces the row.
    """

    __tablename__ = "signal_day"
    __table_args__ = {"sqlite_with_rowid": False}

    day: date = Field(primary_key=True)
    pseudonym: str = Field(primary_key=True, max_length=64)
    messages_sent: int
    messages_after_hours: int
    meeting_hours: float
    focus_hours: float
    worked: bool


class SignalWeek(SQLModel, table=True):
    """An ISO week whose signals were reduced and emitted (no subject in it): claimed once, so a
    second replica or a late row can never contribute to the same week twice."""

    __tablename__ = "signal_week"

    iso_week: str = Field(primary_key=True, max_length=8)
    closed_at: datetime
