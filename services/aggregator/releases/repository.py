"""Every query of stored releases."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, tuple_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from services.aggregator.releases.models import Release, ReleasedCell

_RELEASE = Release.__table__  # type: ignore[attr-defined]


def is_released(session: Session, week: str) -> bool:
    return session.get(Release, week) is not None


# Asked once per settled batch of contributions: a Core statement built once (an ORM select cost
# ~0.3 ms a batch).
_RELEASED_AMONG = sa_select(_RELEASE.c.iso_week).where(_RELEASE.c.iso_week.in_(bindparam("ws", expanding=True)))


def released_among(session: Session, weeks: Collection[str]) -> set[str]:
    return set(session.connection().execute(_RELEASED_AMONG, {"ws": sorted(weeks)}).scalars())


def count_late(session: Session, week: str, n: int) -> None:
    session.execute(
        update(Release).where(col(Release.iso_week) == week).values(late_dropped=col(Release.late_dropped) + n)
    )


def releases(session: Session) -> Sequence[Release]:
    return session.exec(select(Release).order_by(col(Release.iso_week))).all()


def latest_week(session: Session) -> str | None:
    return session.exec(select(Release.iso_week).order_by(col(Release.iso_week).desc()).limit(1)).first()


def cells(
    session: Session,
    *,
    units: set[str] | None = None,
    metric: str | None = None,
    metrics: Sequence[str] | None = None,
    week_from: str | None = None,
    week_to: str | None = None,
    exclude_metrics: Sequence[str] = (),
    after: tuple[str, str, str] | None = None,
    limit: int | None = None,
) -> Sequence[ReleasedCell]:
    """Cells in (week, unit, metric) order; ``after``/``limit`` read one page of them."""
    stmt = select(ReleasedCell)
    if units is not None:
        stmt = stmt.where(col(ReleasedCell.org_unit).in_(sorted(units)))
    if metric is not None:
        stmt = stmt.where(ReleasedCell.metric == metric)
    if metrics is not None:
        stmt = stmt.where(col(ReleasedCell.metric).in_(list(metrics)))
    if week_from is not None:
        stmt = stmt.where(ReleasedCell.iso_week >= week_from)
    if week_to is not None:
        stmt = stmt.where(ReleasedCell.iso_week <= week_to)
    if exclude_metrics:
        stmt = stmt.where(col(ReleasedCell.metric).not_in(list(exclude_metrics)))
    order = (col(ReleasedCell.iso_week), col(ReleasedCell.org_unit), col(ReleasedCell.metric))
    if after is not None:
        stmt = stmt.where(tuple_(*order) > tuple_(*after))
    stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.exec(stmt).all()


def add_all(session: Session, release: Release, rows: list[ReleasedCell]) -> None:
    session.add(release)
    session.add_all(rows)
