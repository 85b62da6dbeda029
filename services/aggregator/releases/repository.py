"""Every query of stored releases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from services.aggregator.releases.models import Release, ReleasedCell


def is_released(session: Session, week: str) -> bool:
    return session.get(Release, week) is not None


def count_late(session: Session, week: str) -> None:
    release = session.get(Release, week)
    if release is not None:
        release.late_dropped += 1
        session.add(release)


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
) -> Sequence[ReleasedCell]:
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
    order = (col(ReleasedCell.iso_week), col(ReleasedCell.org_unit), col(ReleasedCell.metric))
    return session.exec(stmt.order_by(*order)).all()


def add_all(session: Session, release: Release, rows: list[ReleasedCell]) -> None:
    session.add(release)
    session.add_all(rows)
