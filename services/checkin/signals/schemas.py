"""Request and response bodies of work-pattern signals: metadata only, never content."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

MAX_RECORDS = 1000
MAX_MESSAGES = 100_000


class SignalRecord(TypedDict):
    """One person's work-pattern metadata for one day (a TypedDict: validated in Rust, ~1 us each)."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    employee_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=256,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="The employee's id as the IdP puts it in ``sub``; pseudonymised at once, never stored.",
        ),
    ]
    date: Annotated[date, Field(description="The day (YYYY-MM-DD), in the employee's own time zone.")]
    messages_sent: Annotated[int, Field(ge=0, le=MAX_MESSAGES, description="Messages sent that day.")]
    messages_after_hours: Annotated[
        int, Field(ge=0, le=MAX_MESSAGES, description="Of those, sent outside the person's working hours.")
    ]
    meeting_hours: Annotated[float, Field(ge=0, le=24, allow_inf_nan=False, description="Hours in meetings.")]
    focus_hours: Annotated[
        float, Field(ge=0, le=24, allow_inf_nan=False, description="Hours of uninterrupted focus time.")
    ]
    worked: Annotated[bool, Field(description="Whether the person worked that day.")]


class SignalBatch(BaseModel):
    """Up to 1,000 daily records; a re-sent employee-day replaces the stored one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    records: Annotated[list[SignalRecord], Field(min_length=1, max_length=MAX_RECORDS)]


class SignalsAccepted(BaseModel):
    """What happened to the batch: counts only."""

    accepted: int = Field(description="Records stored (or replacing the same employee-day).")
    dropped_no_consent: int = Field(description="Records of people without current work_patterns consent.")
    dropped_closed_week: int = Field(description="Records for a week that has already been closed and reported.")
