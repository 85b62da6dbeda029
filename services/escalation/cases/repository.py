"""Every query about cases and their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_
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


def queue(
    session: Session, states: Sequence[str], limit: int, after: tuple[int, datetime, str] | None = None
) -> list[Case]:
    """Severity first (imminent, high, moderate), then the oldest (ties by id); only those after
    ``after`` (severity rank, opened at, id) when given."""
    stmt = select(Case).where(col(Case.state).in_(states))
    if after is not None:
        rank, at, case_id = after
        stmt = stmt.where(
            or_(
                col(Case.severity_rank) > rank,
                and_(col(Case.severity_rank) == rank, col(Case.opened_at) > at),
                and_(col(Case.severity_rank) == rank, col(Case.opened_at) == at, col(Case.id) > case_id),
            )
        )
    stmt = stmt.order_by(col(Case.severity_rank), col(Case.opened_at), col(Case.id)).limit(limit)
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


def cases_page(session: Session, pseudonym: str, limit: int, before: tuple[datetime, str] | None) -> list[Case]:
    """The subject's cases, newest first (ties by id); only those before ``before`` (opened at, id)."""
    stmt = select(Case).where(Case.pseudonym == pseudonym)
    if before is not None:
        at, case_id = before
        stmt = stmt.where(or_(col(Case.opened_at) < at, and_(col(Case.opened_at) == at, col(Case.id) < case_id)))
    return list(session.exec(stmt.order_by(col(Case.opened_at).desc(), col(Case.id).desc()).limit(limit)))


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
