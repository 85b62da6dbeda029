"""The reminder schedule of each employee who opted in (created by migrations/versions/0002_checkin.py)."""

from __future__ import annotations

from datetime import datetime, time

from sqlmodel import Field, SQLModel


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
