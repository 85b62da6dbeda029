"""Every query of the work-pattern signals.

Rows are keyed by (day, pseudonym) and live only while their ISO week is open, so the table holds
about two weeks of days. A subject's rows are found with one primary-key probe per stored day
(``_days``) instead of a second index, which would make every ingested row a random insert.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, and_, bindparam, case, delete, func, text
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from services.checkin.signals.models import SignalDay

SIGNAL = SignalDay.__table__  # type: ignore[attr-defined]
FEATURES = ("messages_sent", "messages_after_hours", "meeting_hours", "focus_hours", "worked")
# Beyond this many days between the oldest and newest row, find a subject's rows by scanning
# (only reachable after weeks of the closing task not running).
MAX_PROBED_DAYS = 120


def _upsert_for(insert: Any) -> Any:
    stmt = insert(SIGNAL)
    return stmt.on_conflict_do_update(
        index_elements=[SIGNAL.c.day, SIGNAL.c.pseudonym], set_={c: stmt.excluded[c] for c in FEATURES}
    )


# A re-sent employee-day replaces the stored one: idempotent, never counted twice. Built once per dialect.
_UPSERT = {"postgresql": _upsert_for(postgresql.insert), "sqlite": _upsert_for(sqlite.insert)}


def upsert_days(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store one request's rows (no employee-day twice among them; two requests may repeat one)."""
    if rows:
        session.execute(_UPSERT[session.get_bind().dialect.name], rows)


def day_bounds(session: Session) -> tuple[date, date] | None:
    low, high = session.exec(core_select(func.min(SIGNAL.c.day), func.max(SIGNAL.c.day))).one()  # type: ignore[call-overload]
    return None if low is None else (low, high)


def _days(session: Session) -> list[date] | None:
    """Every day that may hold rows, or None when that is too many days to probe one by one."""
    bounds = day_bounds(session)
    if bounds is None:
        return []
    span = (bounds[1] - bounds[0]).days
    return None if span > MAX_PROBED_DAYS else [bounds[0] + timedelta(days=n) for n in range(span + 1)]


def _of(session: Session, pseudonym: str) -> Any:
    days = _days(session)
    if days == []:
        return None
    where = SIGNAL.c.pseudonym == pseudonym
    return where if days is None else and_(SIGNAL.c.day.in_(days), where)


def days_of(session: Session, pseudonym: str) -> list[Any]:
    """The subject's stored days (export), oldest first."""
    where = _of(session, pseudonym)
    if where is None:
        return []
    stmt = core_select(SIGNAL.c.day, *(SIGNAL.c[c] for c in FEATURES)).where(where).order_by(SIGNAL.c.day)
    return list(session.exec(stmt))  # type: ignore[call-overload]


def delete_of(session: Session, pseudonym: str) -> int:
    where = _of(session, pseudonym)
    return 0 if where is None else _count(session.exec(delete(SIGNAL).where(where)))  # type: ignore[call-overload]


def weekly_sums(session: Session, start: date, end: date) -> list[Any]:
    """Per subject over [start, end]: records, days worked, meeting and focus hours on worked days,
    messages and messages outside working hours."""
    worked = SIGNAL.c.worked
    stmt = (
        core_select(
            SIGNAL.c.pseudonym,
            func.count().label("records"),
            func.sum(case((worked, 1), else_=0)).label("days_worked"),
            func.sum(case((worked, SIGNAL.c.meeting_hours), else_=0.0)).label("meeting_hours"),
            func.sum(case((worked, SIGNAL.c.focus_hours), else_=0.0)).label("focus_hours"),
            func.sum(SIGNAL.c.messages_sent).label("messages_sent"),
            func.sum(SIGNAL.c.messages_after_hours).label("messages_after_hours"),
        )
        .where(SIGNAL.c.day >= start, SIGNAL.c.day <= end)
        .group_by(SIGNAL.c.pseudonym)
    )
    return list(session.exec(stmt))  # type: ignore[call-overload]


def delete_between(session: Session, start: date, end: date) -> int:
    stmt = delete(SIGNAL).where(SIGNAL.c.day >= start, SIGNAL.c.day <= end)
    return _count(session.exec(stmt))  # type: ignore[call-overload]


def claim_week(session: Session, iso_week: str, now: datetime) -> bool:
    """Mark ``iso_week`` closed; False if it already was (by this or another replica). On
    PostgreSQL a concurrent claim waits for the first to commit, then finds it taken."""
    stmt = text(
        "INSERT INTO signal_week (iso_week, closed_at) VALUES (:w, :t) ON CONFLICT (iso_week) DO NOTHING"
    ).bindparams(bindparam("t", type_=DateTime(timezone=True)))
    return _count(session.execute(stmt, {"w": iso_week, "t": now})) == 1


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
