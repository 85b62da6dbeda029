"""Every query of forecasts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlmodel import Session, col, select

from services.aggregator.forecasts.models import Forecast

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


def listed(session: Session, units: set[str] | None) -> Sequence[Forecast]:
    stmt = select(Forecast)
    if units is not None:
        stmt = stmt.where(col(Forecast.org_unit).in_(sorted(units)))
    order = (col(Forecast.starts_on).desc(), col(Forecast.org_unit), col(Forecast.metric))
    return session.exec(stmt.order_by(*order)).all()
