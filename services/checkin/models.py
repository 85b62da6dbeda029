"""Tables of the check-in service (created by migrations/versions/0002_checkin.py).

What is in the clear is only what the service must see to operate: the pseudonym (whose row),
the creation time and ISO week (retention, trend), the data key id (shredding). Answers, scores,
the step-up state (which would reveal a low score) and the note are ciphertext under the
subject's data key (``shared.datakeys``), each bound to its row and field.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from shared.contributions.producer import Producer
from shared.datakeys import DataKey  # noqa: F401 - the FK target lives in shared.datakeys


def _key_fk() -> Column[str]:
    # ON DELETE CASCADE: destroying a subject's data key deletes every row sealed under it, and a
    # write racing an erasure fails its foreign key instead of storing unerasable ciphertext.
    return Column(String(32), ForeignKey("data_key.key_id", ondelete="CASCADE"), nullable=False, index=True)


class Checkin(SQLModel, table=True):
    __tablename__ = "checkin"
    __table_args__ = (Index("ix_checkin_pseudonym_week", "pseudonym", "iso_week"),)

    id: str = Field(primary_key=True, max_length=32)
    pseudonym: str = Field(max_length=64)
    key_id: str = Field(sa_column=_key_fk())
    created_at: datetime = Field(index=True)
    iso_week: str = Field(max_length=8)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class CheckinTrend(SQLModel, table=True):
    """Per subject, the latest WHO-5 index and mood of each recent week (a cache of ``checkin``).

    Kept so that answering a check-in with its trend reads one row, however many check-ins the
    subject has; deleted (and rebuilt on the next check-in) whenever check-ins are deleted.
    """

    __tablename__ = "checkin_trend"

    pseudonym: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(sa_column=_key_fk())
    trend: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime


# Org units from HRIS, the org tree, contributions held back: shared.contributions' tables.
CONTRIBUTIONS = Producer(
    "checkin", assignments="org_assignment", pending="pending_contribution", org_units="checkin_org_unit"
)


class NudgeSchedule(SQLModel, table=True):
    """An opted-in weekly reminder; ``next_due`` (UTC) is stored so restarts lose nothing."""

    __tablename__ = "nudge_schedule"

    pseudonym: str = Field(primary_key=True, max_length=64)
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    local_time: time
    timezone: str = Field(max_length=64)
    quiet_start: time | None = None
    quiet_end: time | None = None
    snooze_until: datetime | None = None
    lang: str = Field(max_length=2)
    next_due: datetime = Field(index=True)
    last_sent_at: datetime | None = None
    updated_at: datetime


class SignalDay(SQLModel, table=True):
    """One subject's work-pattern metadata for one day (``POST /v1/signals``, ``work_patterns``).

    Numbers only, never content. Kept only until the day's ISO week closes and is reduced to weekly
    contributions (``signals_weekly``); keyed by (day, pseudonym) so that ingest appends near the
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
