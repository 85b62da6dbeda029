"""Every query on the fairness-audit tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, delete, select

from services.recommender.audits.models import DeclaredAttribute, ExposureTally, FairnessReport
from shared.release import ledger

# One budget per ISO week for every attribute's report (a person is in every attribute's groups).
LEDGER_SCOPE, LEDGER_UNIT = "recommender:fairness", "all"


def attributes_of(session: Session, pseudonym: str) -> Sequence[DeclaredAttribute]:
    return session.exec(select(DeclaredAttribute).where(DeclaredAttribute.pseudonym == pseudonym)).all()


def replace_attributes(session: Session, rows: list[DeclaredAttribute], pseudonym: str) -> None:
    session.exec(delete(DeclaredAttribute).where(col(DeclaredAttribute.pseudonym) == pseudonym))  # type: ignore[call-overload]
    session.add_all(rows)


def tally(session: Session, pseudonym: str, week: str) -> ExposureTally | None:
    return session.get(ExposureTally, (pseudonym, week))


def tallies_with(session: Session, week: str, attribute: str) -> Sequence[tuple[ExposureTally, str]]:
    """The week's tallies joined with each person's value of ``attribute``."""
    query = (
        select(ExposureTally, DeclaredAttribute.value)
        .join(DeclaredAttribute, col(DeclaredAttribute.pseudonym) == col(ExposureTally.pseudonym))
        .where(ExposureTally.audit_week == week, DeclaredAttribute.name == attribute)
    )
    return session.exec(query).all()  # type: ignore[return-value]


def spend(session: Session, week: str, rho: float, cap: float) -> bool:
    """Charge ``rho`` to the week's fairness budget if it stays within ``cap`` (row locked)."""
    return bool(ledger.spend(session, LEDGER_SCOPE, week, [LEDGER_UNIT], rho, cap))


def add_report(session: Session, report: FairnessReport) -> None:
    session.add(report)


def reports(session: Session, *, attribute: str | None, after: str | None, limit: int) -> Sequence[FairnessReport]:
    """Newest first (ids sort by time)."""
    query = select(FairnessReport).order_by(col(FairnessReport.id).desc()).limit(limit)
    if attribute is not None:
        query = query.where(FairnessReport.attribute == attribute)
    if after is not None:
        query = query.where(col(FairnessReport.id) < after)
    return session.exec(query).all()


def has_report(session: Session, week: str, attribute: str) -> bool:
    query = select(FairnessReport.id).where(FairnessReport.audit_week == week, FairnessReport.attribute == attribute)
    return session.exec(query).first() is not None


def delete_of(session: Session, pseudonym: str) -> int:
    removed = 0
    for table in (DeclaredAttribute, ExposureTally):
        result = session.exec(delete(table).where(col(table.pseudonym) == pseudonym))  # type: ignore[call-overload]
        removed += result.rowcount or 0
    return removed
