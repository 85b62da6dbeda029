"""Every query of forecasts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import and_, delete, or_, tuple_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from services.aggregator.forecasts.models import Forecast
from services.aggregator.releases.models import ReleasedCell

RAISED = "raised"


def of_trigger(session: Session, trigger_id: str) -> Sequence[Forecast]:
    return session.exec(select(Forecast).where(Forecast.trigger_id == trigger_id)).all()


def drop_stale(session: Session, trigger_id: str) -> None:
    """The trigger was announced again with other dates: its assessments no longer apply."""
    session.execute(delete(Forecast).where(col(Forecast.trigger_id) == trigger_id))


def put(session: Session, forecast: Forecast) -> None:
    session.add(forecast)


def unscored(session: Session) -> Sequence[Forecast]:
    return session.exec(select(Forecast).where(Forecast.status == RAISED).where(col(Forecast.outcome).is_(None))).all()


def listed(
    session: Session,
    units: set[str] | None,
    after: tuple[date, str, str, str] | None = None,
    limit: int | None = None,
) -> Sequence[Forecast]:
    """Assessments, the latest trigger first, then by (unit, metric, trigger id); ``after``/``limit``
    read one page of them."""
    stmt = select(Forecast)
    if units is not None:
        stmt = stmt.where(col(Forecast.org_unit).in_(sorted(units)))
    if after is not None:
        starts_on, *rest = after
        tail = tuple_(col(Forecast.org_unit), col(Forecast.metric), col(Forecast.trigger_id))
        stmt = stmt.where(
            or_(col(Forecast.starts_on) < starts_on, and_(col(Forecast.starts_on) == starts_on, tail > tuple_(*rest)))
        )
    order = (col(Forecast.starts_on).desc(), col(Forecast.org_unit), col(Forecast.metric), col(Forecast.trigger_id))
    stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.exec(stmt).all()


def released_means(
    session: Session, units: set[str], metrics: Sequence[str] | None, week_from: str | None, week_to: str | None = None
) -> Sequence[tuple[str, str, str, float, float | None, bool]]:
    """(unit, metric, week, mean, half-width, released at the managers' k) of every cell released in
    the organisation-wide view: plain rows, no ORM objects (a year of a large org is many cells)."""
    c = ReleasedCell
    columns = (c.org_unit, c.metric, c.iso_week, c.mean, c.mean_half_width, c.manager_released)
    stmt = select_columns(*map(col, columns)).where(
        col(c.released).is_(True), col(c.mean).is_not(None), col(c.org_unit).in_(sorted(units))
    )
    if metrics is not None:
        stmt = stmt.where(col(c.metric).in_(list(metrics)))
    if week_from is not None:
        stmt = stmt.where(col(c.iso_week) >= week_from)
    if week_to is not None:
        stmt = stmt.where(col(c.iso_week) <= week_to)
    return [tuple(r) for r in session.execute(stmt).all()]  # type: ignore[misc]
