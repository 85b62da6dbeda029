"""Every query of the contributions state.

The ingest statements are Core statements on the tables, each run once per settled batch
(``executemany`` for the writes): a contribution costs no ORM object, load or flush.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from services.aggregator.contributions.models import Cell, PendingToken

_PENDING = PendingToken.__table__  # type: ignore[attr-defined]
_CELL = Cell.__table__  # type: ignore[attr-defined]
_CHUNK = 500  # keys per IN list (well under every driver's bound-parameter limit)

_HELD = sa_select(_PENDING.c.period_token, _PENDING.c.metric, _PENDING.c.org_unit, _PENDING.c.value).where(
    _PENDING.c.iso_week == bindparam("w"), _PENDING.c.period_token.in_(bindparam("ts", expanding=True))
)
_CELLS = sa_select(_CELL.c.metric, _CELL.c.org_unit, _CELL.c.count, _CELL.c.total, _CELL.c.histogram).where(
    _CELL.c.iso_week == bindparam("w"),
    _CELL.c.metric.in_(bindparam("ms", expanding=True)),
    _CELL.c.org_unit.in_(bindparam("us", expanding=True)),
)
_PENDING_KEY = (
    (_PENDING.c.iso_week == bindparam("k_w"))
    & (_PENDING.c.metric == bindparam("k_m"))
    & (_PENDING.c.period_token == bindparam("k_t"))
)
_CELL_KEY = (
    (_CELL.c.iso_week == bindparam("k_w"))
    & (_CELL.c.metric == bindparam("k_m"))
    & (_CELL.c.org_unit == bindparam("k_u"))
)
_INSERT_TOKEN = insert(_PENDING)
_UPDATE_TOKEN = update(_PENDING).where(_PENDING_KEY)
_DELETE_TOKEN = delete(_PENDING).where(_PENDING_KEY)
_INSERT_CELL = insert(_CELL)
_UPDATE_CELL = update(_CELL).where(_CELL_KEY)


def _chunks(keys: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(keys)
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i : i + _CHUNK]


def held_tokens(session: Session, week: str, tokens: Collection[str]) -> list[tuple[str, str, str, float]]:
    """(period_token, metric, org_unit, value) of every contribution held for these tokens of the
    week, all metrics (a retraction removes them all). Served by ``ix_contribution_pending_token``."""
    conn = session.connection()
    return [tuple(row) for part in _chunks(tokens) for row in conn.execute(_HELD, {"w": week, "ts": part})]  # type: ignore[misc]


def cells_of(
    session: Session, week: str, metrics: Collection[str], units: Collection[str]
) -> list[tuple[str, str, int, float, str]]:
    """(metric, org_unit, count, total, histogram) of the week's cells among these metrics and
    units (a superset of the cells asked for when several metrics are: the caller picks)."""
    conn = session.connection()
    ms = sorted(metrics)
    return [
        tuple(row)  # type: ignore[misc]
        for part in _chunks(units)
        for row in conn.execute(_CELLS, {"w": week, "ms": ms, "us": part})
    ]


def write_tokens(
    session: Session, inserted: list[dict[str, Any]], updated: list[dict[str, Any]], deleted: list[dict[str, Any]]
) -> None:
    """Rows as dicts: inserted by column; updated and deleted keyed by ``k_w``/``k_m``/``k_t``."""
    conn = session.connection()
    if deleted:
        conn.execute(_DELETE_TOKEN, deleted)
    if updated:
        conn.execute(_UPDATE_TOKEN, updated)
    if inserted:
        conn.execute(_INSERT_TOKEN, inserted)


def write_cells(session: Session, inserted: list[dict[str, Any]], updated: list[dict[str, Any]]) -> None:
    """Rows as dicts: inserted by column; updated keyed by ``k_w``/``k_m``/``k_u``."""
    conn = session.connection()
    if updated:
        conn.execute(_UPDATE_CELL, updated)
    if inserted:
        conn.execute(_INSERT_CELL, inserted)


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
