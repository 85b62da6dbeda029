"""Weekly reduction of work-pattern signals into de-identified contributions.

When an ISO week closes (``signals_close_hours`` after it ends, Monday 00:00 UTC: daily uploads
arrive the day after), the contributions task (scheduled in ``app.py``, every ``contribution_release_seconds``)
reduces each subject's days of that week to four features and deletes the days:

* ``days_worked`` (0-7), records marked as worked;
* ``meeting_hours_per_day`` and ``focus_hours_per_day`` (0-24, to 0.1 h), means over days worked;
* ``after_hours_message_share`` (0-100, whole percent), messages sent outside working hours out of
  all messages sent that week.

Each becomes a ``contribution.aggregate.recorded.v1`` exactly as a check-in's: the org unit in force
on the week's Monday (no unit, no contribution), the ISO week, the metric, the value and
``period_token(period key, pseudonym, week)`` — the same token as that person's check-in
contributions of the week, so one person counts once per period. Never the pseudonym, never a day.
They are held with the check-in contributions and released with them (``shared.contributions``:
one shuffled batch, no trace headers, tiny units rolled up).

Only subjects whose ``work_patterns`` consent is current at closing contribute (the gate is asked
again; while it is blind nothing closes). The week is claimed in ``signal_week`` in the same
transaction, so a second replica, a retry after a crash, or a row that raced the closing can never
contribute to the same week twice; rows of a week already claimed are simply deleted. State is
all in the database, so a restart (or downtime of several weeks) only delays closing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from services.checkin.clock import iso_week, week_start
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.signals import repository as repo
from services.checkin.signals.service import PURPOSE, closes_at
from shared.consent_gate import ConsentGate
from shared.contributions import repository as contributions
from shared.contributions.producer import Draft
from shared.crypto import period_token

ORG_CHUNK = 500


def features(row: Any) -> list[tuple[str, float]]:
    """The week's features of one subject, from ``repository.weekly_sums``."""
    worked = int(row.days_worked or 0)
    out: list[tuple[str, float]] = [("days_worked", float(worked))]
    if worked:
        out.append(("meeting_hours_per_day", round(float(row.meeting_hours) / worked, 1)))
        out.append(("focus_hours_per_day", round(float(row.focus_hours) / worked, 1)))
    sent = int(row.messages_sent or 0)
    if sent:
        out.append(("after_hours_message_share", float(round(100 * int(row.messages_after_hours) / sent))))
    return out


def _org_units(session: Session, pseudonyms: list[str], on: date) -> dict[str, str | None]:
    conn = session.connection()
    units: dict[str, str | None] = {}
    for i in range(0, len(pseudonyms), ORG_CHUNK):
        units.update(contributions.units_at(conn, CONTRIBUTIONS.tables, pseudonyms[i : i + ORG_CHUNK], on))
    return units


def _close(session: Session, gate: ConsentGate, period_key: bytes, start: date, now: datetime) -> list[dict[str, Any]]:
    """Claim the week starting ``start``, reduce it, delete its days; the outbox rows to publish."""
    end = start + timedelta(days=6)
    week = iso_week(start)
    if not repo.claim_week(session, week, now):
        repo.delete_between(session, start, end)  # stragglers of a week already reported
        return []
    sums = [row for row in repo.weekly_sums(session, start, end) if gate.allowed(row.pseudonym, PURPOSE)]
    units = _org_units(session, [row.pseudonym for row in sums], start)
    out = []
    for row in sums:
        unit = units.get(row.pseudonym)
        if unit is None:
            continue
        token = period_token(period_key, row.pseudonym, week)
        out += CONTRIBUTIONS.rows(unit, week, (Draft(metric, value, token) for metric, value in features(row)))
    repo.delete_between(session, start, end)
    return out


def close_weeks(
    session: Session,
    gate: ConsentGate | None,
    period_key: bytes,
    close_hours: float,
    now: datetime,
    notify: Callable[[], None],
) -> int:
    """Close every week with stored days whose time has come; returns contributions held (the
    caller releases them in the same transaction: ``app.start_tasks``)."""
    if gate is None or not gate.synced:
        return 0  # blind: consent cannot be checked, so nothing closes (and nothing is lost)
    bounds = repo.day_bounds(session)
    if bounds is None:
        return 0
    rows: list[dict[str, Any]] = []
    start = week_start(bounds[0])
    while start <= bounds[1] and closes_at(start, close_hours) <= now:
        rows += _close(session, gate, period_key, start, now)
        start += timedelta(days=7)
    contributions.insert_pending(session.connection(), CONTRIBUTIONS.tables, rows)  # released next
    return len(rows)
