"""Every query about cases and their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from services.escalation.cases.models import OPEN_STATES, Case, CaseEvent
from services.escalation.ladder.models import CasePage, CaseTimer


def lock_case(session: Session, case_id: str, *, skip_locked: bool = False) -> Case | None:
    stmt = select(Case).where(Case.id == case_id).with_for_update(skip_locked=skip_locked)
    return session.exec(stmt).first()


def open_case_for_checkin(session: Session, pseudonym: str, checkin_ref: str) -> Case | None:
    """The open case a later flag of the same check-in adds to (locked)."""
    stmt = (
        select(Case)
        .where(Case.pseudonym == pseudonym, Case.checkin_ref == checkin_ref, col(Case.state).in_(OPEN_STATES))
        .with_for_update()
    )
    return session.exec(stmt).first()


def add(session: Session, row: Case | CaseEvent) -> None:
    session.add(row)


def queue(session: Session, states: Sequence[str], limit: int) -> list[Case]:
    """Severity first (imminent, high, moderate), then the oldest."""
    stmt = (
        select(Case)
        .where(col(Case.state).in_(states))
        .order_by(col(Case.severity_rank), col(Case.opened_at), col(Case.id))
        .limit(limit)
    )
    return list(session.exec(stmt))


def history(session: Session, case_id: str) -> list[CaseEvent]:
    stmt = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))
    return list(session.exec(stmt))


def page_count(session: Session, case_id: str) -> int:
    return int(session.exec(select(func.count()).select_from(CasePage).where(CasePage.case_id == case_id)).one())


def cases_of(session: Session, pseudonym: str, *, sources: Sequence[str] | None = None) -> list[Case]:
    stmt: Any = select(Case).where(Case.pseudonym == pseudonym)
    if sources is not None:
        stmt = stmt.where(col(Case.source).in_(sources))
    return list(session.exec(stmt.order_by(col(Case.opened_at).desc())))


def open_consent_cases(session: Session, pseudonym: str) -> list[Case]:
    """Open cases whose only basis is the escalation consent (locked)."""
    stmt = (
        select(Case)
        .where(Case.pseudonym == pseudonym, Case.basis == "consent", col(Case.state).in_(OPEN_STATES))
        .with_for_update()
    )
    return list(session.exec(stmt))


def delete_cases(session: Session, case_ids: Sequence[str]) -> int:
    """Delete cases; history, timers and pages go with them (ON DELETE CASCADE)."""
    if not case_ids:
        return 0
    for model in (CaseEvent, CasePage, CaseTimer):  # not left to ON DELETE CASCADE: explicit on both backends
        session.exec(delete(model).where(col(model.case_id).in_(case_ids)))  # type: ignore[call-overload]
    result: Any = session.exec(delete(Case).where(col(Case.id).in_(case_ids)))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


def held_cases_due(session: Session, now: datetime) -> list[Case]:
    """Cases kept under a legal hold after an erasure whose hold has ended."""
    stmt = select(Case).where(col(Case.legal_hold_until).is_not(None), col(Case.legal_hold_until) <= now)
    return list(session.exec(stmt))
