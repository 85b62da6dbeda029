"""Every query of the contributions state."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from services.aggregator.contributions.models import Cell, PendingToken

_PENDING = PendingToken.__table__  # type: ignore[attr-defined]
_EXISTS = (
    sa_select(_PENDING.c.period_token)
    .where(_PENDING.c.iso_week == bindparam("w"), _PENDING.c.metric == bindparam("m"))
    .where(_PENDING.c.period_token == bindparam("t"))
)


def pending(session: Session, week: str, metric: str, token: str) -> PendingToken | None:
    """The held token, if any. A new token is the usual case: asked with a Core query first (no
    ORM load), and loaded as an object only when it exists."""
    key = (week, metric, token)
    loaded = session.identity_map.get(session.identity_key(PendingToken, key))  # type: ignore[arg-type]
    if loaded is None and session.connection().execute(_EXISTS, {"w": week, "m": metric, "t": token}).first() is None:
        return None
    return session.get(PendingToken, key)


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
