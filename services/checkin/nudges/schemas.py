"""Request and response bodies of reminders (strict, like every request of the service)."""

from __future__ import annotations

from datetime import time as Time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.checkin.checkins.schemas import Lang, Strict

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HANDLE_PATTERN = r"^nh_[0-9a-f]{32}$"


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Time
    end: Time


class NudgeUpdate(Strict):
    """A weekly reminder at a local time, never in quiet hours, not before ``snooze_until``."""

    model_config = ConfigDict(extra="forbid", strict=False)

    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    time: Time
    timezone: str = Field(max_length=64, description="IANA time zone, e.g. Europe/Paris.")
    quiet_hours: QuietHours | None = None
    snooze_until: AwareDatetime | None = None
    lang: Lang = "en"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        if tz not in _zones():
            raise ValueError("unknown IANA time zone")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone") from None
        return tz

    @field_validator("time")
    @classmethod
    def _whole_minutes(cls, value: Time) -> Time:
        if value.tzinfo is not None:
            raise ValueError("give a local time without offset; the zone is in 'timezone'")
        return value.replace(second=0, microsecond=0)


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


class NudgeRead(NudgeUpdate):
    next_due: AwareDatetime = Field(description="When the next reminder is due (UTC).")
    next_due_local: str = Field(description="The same instant in the chosen time zone (ISO 8601).")


class NudgeHandle(BaseModel):
    """Your nudge handle: give it to your employer's chat app to get your reminders there."""

    handle: str = Field(pattern=HANDLE_PATTERN, examples=["nh_3f0c9e2a7b1d4c5e8f6a0b2c4d6e8f01"])
