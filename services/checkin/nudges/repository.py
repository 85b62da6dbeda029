"""Every query of reminder schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, select

from services.checkin.nudges.models import NudgeSchedule
from shared.webhooks import forget_subject

NUDGE = NudgeSchedule.__table__  # type: ignore[attr-defined]


def get_nudge(session: Session, pseudonym: str) -> NudgeSchedule | None:
    return session.get(NudgeSchedule, pseudonym)


def delete_nudge(session: Session, pseudonym: str) -> int:
    """The schedule and every reminder still queued as a webhook (opt-out, withdrawal, erasure)."""
    removed = _count(session.exec(delete(NUDGE).where(NUDGE.c.pseudonym == pseudonym)))
    return removed + forget_subject(session, pseudonym)


def due_nudges(session: Session, now: datetime, limit: int) -> list[NudgeSchedule]:
    stmt = select(NudgeSchedule).where(NUDGE.c.next_due <= now).order_by(NUDGE.c.next_due).limit(limit)
    return list(session.exec(stmt))


def advance_nudge(session: Session, pseudonym: str, expected_due: datetime, values: dict[str, Any]) -> bool:
    """Move a schedule on only if nobody else did (compare-and-set on ``next_due``)."""
    stmt = update(NUDGE).where(NUDGE.c.pseudonym == pseudonym, NUDGE.c.next_due == expected_due).values(**values)
    return _count(session.exec(stmt)) == 1


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
