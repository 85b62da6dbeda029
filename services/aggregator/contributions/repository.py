"""Every query of the contributions state."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.aggregator.contributions.models import Cell, PendingToken


def pending(session: Session, week: str, metric: str, token: str) -> PendingToken | None:
    return session.get(PendingToken, (week, metric, token))


def pending_of_token(session: Session, week: str, token: str) -> Sequence[PendingToken]:
    return session.exec(
        select(PendingToken).where(PendingToken.iso_week == week, PendingToken.period_token == token)
    ).all()


def cell(session: Session, week: str, metric: str, unit: str) -> Cell | None:
    return session.get(Cell, (week, metric, unit))


def cells_of_week(session: Session, week: str) -> Sequence[Cell]:
    return session.exec(select(Cell).where(Cell.iso_week == week, col(Cell.count) > 0)).all()


def open_weeks(session: Session) -> list[str]:
    return list(session.exec(select(Cell.iso_week).distinct().order_by(Cell.iso_week)).all())


def drop_week(session: Session, week: str) -> int:
    """Delete a released week's tokens and statistics (the release keeps what was published)."""
    tokens = session.exec(select(func.count()).select_from(PendingToken).where(PendingToken.iso_week == week)).one()
    session.execute(delete(PendingToken).where(col(PendingToken.iso_week) == week))
    session.execute(delete(Cell).where(col(Cell.iso_week) == week))
    return int(tokens)
