"""Every query of the org tree, triggers and manager scopes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.aggregator.org.models import ManagerScope, OrgUnitVersion, Trigger


def upsert_version(session: Session, unit: str, effective_from: date, parent: str | None, state: str) -> None:
    row = session.get(OrgUnitVersion, (unit, effective_from)) or OrgUnitVersion(
        org_unit=unit, effective_from=effective_from, state=state
    )
    row.parent, row.state = parent, state
    session.add(row)


def versions_until(session: Session, day: date) -> Sequence[OrgUnitVersion]:
    return session.exec(
        select(OrgUnitVersion)
        .where(OrgUnitVersion.effective_from <= day)
        .order_by(col(OrgUnitVersion.org_unit), col(OrgUnitVersion.effective_from))
    ).all()


def upsert_trigger(session: Session, trigger: Trigger) -> None:
    session.merge(trigger)


def triggers(session: Session) -> Sequence[Trigger]:
    return session.exec(select(Trigger).order_by(col(Trigger.starts_on))).all()


def replace_scope(session: Session, manager_ref: str, units: list[str]) -> None:
    session.execute(delete(ManagerScope).where(col(ManagerScope.manager_ref) == manager_ref))
    for unit in sorted(set(units)):
        session.add(ManagerScope(manager_ref=manager_ref, org_unit=unit))


def scope_of(session: Session, manager_ref: str) -> list[str]:
    return list(session.exec(select(ManagerScope.org_unit).where(ManagerScope.manager_ref == manager_ref)).all())
