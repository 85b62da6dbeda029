"""Every query of the ladder: configuration documents, durable timers, pages sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.escalation.ladder.models import CasePage, CaseTimer, LadderConfig


def get_config(session: Session, kind: str) -> LadderConfig | None:
    return session.get(LadderConfig, kind)


def put_config(session: Session, kind: str, document: str, at: datetime, by: str) -> LadderConfig:
    row = session.exec(select(LadderConfig).where(LadderConfig.kind == kind).with_for_update()).first()
    if row is None:
        row = LadderConfig(kind=kind, version=1, document=document, updated_at=at, updated_by=by)
    else:
        row.version, row.document, row.updated_at, row.updated_by = row.version + 1, document, at, by
    session.add(row)
    session.flush()
    return row


def add_timer(session: Session, case_id: str, kind: str, round_: int, step: int, due_at: datetime) -> None:
    session.add(CaseTimer(case_id=case_id, kind=kind, round=round_, step=step, due_at=due_at))


def delete_timers(session: Session, case_id: str, kind: str | None = None) -> None:
    stmt: Any = delete(CaseTimer).where(col(CaseTimer.case_id) == case_id)
    if kind is not None:
        stmt = stmt.where(col(CaseTimer.kind) == kind)
    session.exec(stmt)


def timers_of(session: Session, case_id: str) -> list[CaseTimer]:
    return list(session.exec(select(CaseTimer).where(CaseTimer.case_id == case_id).order_by(col(CaseTimer.due_at))))


def due_timers(session: Session, now: datetime, limit: int) -> list[tuple[int, str]]:
    """(timer id, case id) of timers due at ``now``, oldest first."""
    rows = session.exec(
        select(CaseTimer.id, CaseTimer.case_id)
        .where(col(CaseTimer.due_at) <= now)
        .order_by(col(CaseTimer.due_at))
        .limit(limit)
    ).all()
    return [(int(t), c) for t, c in rows if t is not None]


def lock_timer(session: Session, timer_id: int) -> CaseTimer | None:
    """The timer, locked for this transaction; None if gone or held by another replica.

    ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a replica never waits for, nor fires, a timer another
    one is firing. SQLite ignores it (one writer at a time; the page's primary key is the backstop).
    """
    stmt = select(CaseTimer).where(CaseTimer.id == timer_id).with_for_update(skip_locked=True)
    return session.exec(stmt).first()


def delete_timer(session: Session, timer: CaseTimer) -> bool:
    """Delete the timer; False if it was already gone (fired meanwhile by another SQLite writer)."""
    result: Any = session.exec(delete(CaseTimer).where(col(CaseTimer.id) == timer.id))
    return int(result.rowcount or 0) == 1


def record_page(session: Session, page: CasePage) -> bool:
    """Insert the page's idempotency row; False if this (case, round, step) was already paged.

    The caller holds the timer's lock (or SQLite's single writer), so the check is not racy; the
    primary key is the backstop: a duplicate fails the whole transaction, which then pages nobody.
    """
    if session.get(CasePage, (page.case_id, page.round, page.step)) is not None:
        return False
    session.add(page)
    session.flush()
    return True


def pages_of(session: Session, case_id: str) -> list[CasePage]:
    return list(session.exec(select(CasePage).where(CasePage.case_id == case_id).order_by(col(CasePage.paged_at))))
