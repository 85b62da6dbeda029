"""Every query of insights."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from services.aggregator.insights.models import Insight


def add(session: Session, insight: Insight) -> None:
    session.add(insight)


def listed(session: Session, units: set[str] | None, managers_only: bool) -> Sequence[Insight]:
    stmt = select(Insight)
    if units is not None:
        stmt = stmt.where(col(Insight.org_unit).in_(sorted(units)))
    if managers_only:
        stmt = stmt.where(col(Insight.manager_visible).is_(True))
    return session.exec(stmt.order_by(col(Insight.iso_week).desc(), col(Insight.org_unit))).all()
