"""Work-pattern signals at the door: validate, drop the unconsented, pseudonymise, hand to the writer.

An integration (HR analytics, calendar or chat connector; role ``integration``) posts batches of
per-person daily **metadata** — messages sent and how many of them outside working hours, meeting
and focus hours, whether the person worked that day — keyed by the employee id the IdP uses as
``sub``. Never content: the contract has no field that could carry any, and unknown fields are
refused.

At the door, in this order, for the whole batch before anything is stored: strict validation
(422: types, bounds, unknown fields, a date in the future, more after-hours messages than messages,
more than 24 hours of meetings and focus, the same employee-day twice; 413 over 1,000 records);
then per record: the employee id becomes the subject's pseudonym (the HMAC every service uses,
``shared.crypto.pseudonym``) and is forgotten; no current ``work_patterns`` consent, the record is
dropped and only counted; a day whose ISO week has already closed is dropped and counted. What is
left is stored in bulk (``writer.py``) and reduced weekly (``tasks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from typing import Any

from fastapi.exceptions import RequestValidationError

from services.checkin.clock import week_start
from services.checkin.signals.schemas import SignalRecord
from shared.crypto import pseudonym
from shared.events.checkin import ConsentView

PURPOSE = "work_patterns"


_FIELDS = itemgetter(
    "employee_id", "date", "messages_sent", "messages_after_hours", "meeting_hours", "focus_hours", "worked"
)


class Pseudonymiser:
    """The platform's pseudonym (``shared.crypto.pseudonym``) under one key and tenant."""

    def __init__(self, key: bytes, tenant: str) -> None:
        self._key, self._tenant = key, tenant

    def __call__(self, employee_id: str) -> str:
        return pseudonym(self._key, self._tenant, employee_id)


def closes_at(start: date, close_hours: float) -> datetime:
    """When the ISO week starting on ``start`` closes: its end (Monday 00:00 UTC) plus the grace."""
    return datetime.combine(start + timedelta(days=7), time(0), UTC) + timedelta(hours=close_hours)


def first_open_day(now: datetime, close_hours: float) -> date:
    """The Monday of the oldest week still open (this week, or last week during its grace)."""
    monday = week_start(now.astimezone(UTC).date())
    previous = monday - timedelta(days=7)
    return previous if now < closes_at(previous, close_hours) else monday


@dataclass
class Prepared:
    rows: list[dict[str, Any]]
    dropped_no_consent: int
    dropped_closed_week: int

    def answer(self) -> dict[str, int]:
        return {
            "accepted": len(self.rows),
            "dropped_no_consent": self.dropped_no_consent,
            "dropped_closed_week": self.dropped_closed_week,
        }


def _invalid(index: int, field: str, kind: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", "records", index, field), "type": kind, "msg": msg}])


def prepare(
    records: list[SignalRecord],
    pseudonymise: Pseudonymiser,
    gate: ConsentView,
    now: datetime,
    close_hours: float,
) -> Prepared:
    """Rows to store and the counts; raises 422 (nothing kept) on the
    first record that breaks a rule the schema cannot express."""
    latest = now.astimezone(UTC).date() + timedelta(days=1)  # time zones ahead of UTC
    first_open = first_open_day(now, close_hours)
    allowed = gate.allowed
    seen: set[tuple[str, date]] = set()
    rows: list[dict[str, Any]] = []
    no_consent = closed = 0
    for index, r in enumerate(records):
        employee, day, sent, after, meeting, focus, worked = _FIELDS(r)
        if day > latest:
            raise _invalid(index, "date", "date_future", "The date is in the future.")
        if after > sent:
            raise _invalid(index, "messages_after_hours", "more_than_sent", "More than the messages sent.")
        if meeting + focus > 24:
            raise _invalid(index, "focus_hours", "day_too_long", "Meeting and focus hours exceed 24.")
        key = (employee, day)
        if key in seen:
            raise _invalid(index, "date", "duplicate", "The same employee and date appear twice in the batch.")
        seen.add(key)
        subject = pseudonymise(employee)
        if not allowed(subject, PURPOSE):
            no_consent += 1
        elif day < first_open:
            closed += 1
        else:
            rows.append(
                {"day": day, "pseudonym": subject, "messages_sent": sent, "messages_after_hours": after,
                 "meeting_hours": meeting, "focus_hours": focus, "worked": worked}
            )  # fmt: skip
    return Prepared(rows, no_consent, closed)
