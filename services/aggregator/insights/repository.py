"""Every query of insights."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, tuple_
from sqlmodel import Session, col, select

from services.aggregator.insights.models import Insight


def add(session: Session, insight: Insight) -> None:
    session.add(insight)


def listed(
    session: Session,
    units: set[str] | None,
    managers_only: bool,
    after: tuple[str, str, str] | None = None,
    limit: int | None = None,
) -> Sequence[Insight]:
    """Insights, the latest week first, then by (unit, id); ``after``/``limit`` read one page."""
    stmt = select(Insight)
    if units is not None:
        stmt = stmt.where(col(Insight.org_unit).in_(sorted(units)))
    if managers_only:
        stmt = stmt.where(col(Insight.manager_visible).is_(True))
    if after is not None:
        week, *rest = after
        tail = tuple_(col(Insight.org_unit), col(Insight.insight_id))
        stmt = stmt.where(or_(col(Insight.iso_week) < week, and_(col(Insight.iso_week) == week, tail > tuple_(*rest))))
    stmt = stmt.order_by(col(Insight.iso_week).desc(), col(Insight.org_unit), col(Insight.insight_id))
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.exec(stmt).all()
