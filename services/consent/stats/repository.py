"""Every query of the consent statistics: the population, grants, and stored releases."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlmodel import Session, col, select

from services.consent.consents.models import GRANTED, Consent
from services.consent.directory.models import DirectoryEntry
from services.consent.hris.models import HrisSubject
from services.consent.stats.models import TENANT, ConsentStatsCell, ConsentStatsMembership, ConsentStatsRelease


def population(session: Session) -> dict[str, str | None]:
    """Everyone counted: subjects in the directory and current HRIS subjects, with their unit."""
    people: dict[str, str | None] = dict.fromkeys(session.exec(select(DirectoryEntry.pseudonym)))
    stmt = select(HrisSubject.pseudonym, HrisSubject.org_unit).where(col(HrisSubject.left_on).is_(None))
    for pseudonym, unit in session.exec(stmt):
        people[pseudonym] = unit
    return people


def granted_sets(session: Session) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for pseudonym, purpose in session.exec(select(Consent.pseudonym, Consent.purpose).where(Consent.state == GRANTED)):
        found.setdefault(purpose, set()).add(pseudonym)
    return found


def release(session: Session, period: str) -> ConsentStatsRelease | None:
    return session.get(ConsentStatsRelease, period)


def previous_period(session: Session, period: str) -> str | None:
    stmt = select(ConsentStatsRelease.period).where(ConsentStatsRelease.period < period)
    return session.exec(stmt.order_by(col(ConsentStatsRelease.period).desc()).limit(1)).first()


def cells(session: Session, period: str) -> Sequence[ConsentStatsCell]:
    return session.exec(
        select(ConsentStatsCell).where(ConsentStatsCell.period == period).order_by(col(ConsentStatsCell.org_unit))
    ).all()


def unit_cells(session: Session, period: str, after: str | None, limit: int | None) -> Sequence[ConsentStatsCell]:
    """The period's org-unit cells (not the tenant's) by unit id, after ``after``, at most ``limit``."""
    stmt = (
        select(ConsentStatsCell)
        .where(ConsentStatsCell.period == period, ConsentStatsCell.org_unit != TENANT)
        .order_by(col(ConsentStatsCell.org_unit))
    )
    if after is not None:
        stmt = stmt.where(col(ConsentStatsCell.org_unit) > after)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.exec(stmt).all()


def memberships(session: Session, period: str | None = None) -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    """(period, unit) -> set name -> members, for one period or all stored ones."""
    stmt = select(ConsentStatsMembership)
    if period is not None:
        stmt = stmt.where(ConsentStatsMembership.period == period)
    found: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for row in session.exec(stmt):
        found.setdefault((row.period, row.org_unit), {})[row.set_name] = frozenset(json.loads(row.members))
    return found


def store(
    session: Session,
    header: ConsentStatsRelease,
    rows: list[ConsentStatsCell],
    sets: dict[str, dict[str, frozenset[str]]],
) -> None:
    session.add(header)
    session.add_all(rows)
    for unit, named in sets.items():
        for name, members in named.items():
            session.add(
                ConsentStatsMembership(
                    period=header.period, org_unit=unit, set_name=name, members=json.dumps(sorted(members))
                )
            )


def forget(session: Session, pseudonym: str) -> int:
    """Remove an erased subject from every stored membership set."""
    changed = 0
    stmt = select(ConsentStatsMembership).where(col(ConsentStatsMembership.members).contains(pseudonym))
    for row in session.exec(stmt):
        members = [m for m in json.loads(row.members) if m != pseudonym]
        row.members = json.dumps(members)
        session.add(row)
        changed += 1
    return changed
