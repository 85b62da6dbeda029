"""Every query of the SLA figures."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.escalation.sla.models import OrgAssignment, PendingContribution


def assign_org_unit(session: Session, pseudonym: str, org_unit: str | None, effective_from: date) -> None:
    existing = session.exec(
        select(OrgAssignment).where(
            OrgAssignment.pseudonym == pseudonym, OrgAssignment.effective_from == effective_from
        )
    ).first()
    if existing is None:
        session.add(OrgAssignment(pseudonym=pseudonym, org_unit=org_unit, effective_from=effective_from))
    else:
        existing.org_unit = org_unit
        session.add(existing)


def org_unit_on(session: Session, pseudonym: str, on: date) -> str | None:
    stmt = (
        select(OrgAssignment.org_unit)
        .where(OrgAssignment.pseudonym == pseudonym, col(OrgAssignment.effective_from) <= on)
        .order_by(col(OrgAssignment.effective_from).desc())
        .limit(1)
    )
    unit: str | None = session.exec(stmt).first()
    return unit


def delete_assignments_of(session: Session, pseudonym: str) -> int:
    result: Any = session.exec(delete(OrgAssignment).where(col(OrgAssignment.pseudonym) == pseudonym))
    return int(result.rowcount or 0)


def add_pending(session: Session, row: PendingContribution) -> None:
    session.add(row)


def take_pending(session: Session, limit: int) -> list[PendingContribution]:
    stmt = select(PendingContribution).limit(limit).with_for_update(skip_locked=True)
    return list(session.exec(stmt))


def delete_pending(session: Session, msg_ids: list[str]) -> None:
    session.exec(delete(PendingContribution).where(col(PendingContribution.msg_id).in_(msg_ids)))  # type: ignore[call-overload]
