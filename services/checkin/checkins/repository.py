"""Every query of check-ins and their trend cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, select

from services.checkin.checkins.models import Checkin, CheckinTrend

CHECKIN = Checkin.__table__  # type: ignore[attr-defined]
TREND = CheckinTrend.__table__  # type: ignore[attr-defined]

# --- storing a check-in ----------------------------------------------------------------------------

# The ingest path's statements, built once and run with parameters (building a statement costs
# more than running it), and no ORM objects: rows never read back in their transaction.
_LOCK_TREND = core_select(TREND.c.key_id, TREND.c.trend).where(TREND.c.pseudonym == bindparam("p")).with_for_update()
_UPDATE_TREND = (
    update(TREND)
    .where(TREND.c.pseudonym == bindparam("p"))
    .values(key_id=bindparam("key_id"), trend=bindparam("trend"), updated_at=bindparam("updated_at"))
)


def lock_trend(session: Session, pseudonym: str) -> Any | None:
    """The subject's trend cache (``key_id``, ``trend``), locked until the transaction ends
    (PostgreSQL; SQLite's writer already holds the database's write lock)."""
    return session.execute(_LOCK_TREND, {"p": pseudonym}).first()


def recent_checkins(session: Session, pseudonym: str, since_week: str) -> list[Checkin]:
    stmt = select(Checkin).where(CHECKIN.c.pseudonym == pseudonym, CHECKIN.c.iso_week >= since_week)
    return list(session.exec(stmt))


def add_checkin(session: Session, row: dict[str, Any]) -> None:
    session.execute(insert(CHECKIN), row)


def save_trend(session: Session, pseudonym: str, values: dict[str, Any], *, exists: bool) -> None:
    if exists:
        session.execute(_UPDATE_TREND, {"p": pseudonym, **values})
    else:
        session.execute(insert(TREND), {"pseudonym": pseudonym, **values})


# --- check-ins (Session) ---------------------------------------------------------------------------


def get_checkin(session: Session, checkin_id: str, pseudonym: str) -> Checkin | None:
    row = session.get(Checkin, checkin_id)
    return row if row is not None and row.pseudonym == pseudonym else None


def list_checkins(
    session: Session, pseudonym: str, limit: int | None = None, before: tuple[datetime, str] | None = None
) -> list[Checkin]:
    """Newest first (ties by id); only those before ``before`` (created_at, id) when given."""
    stmt = (
        select(Checkin)
        .where(CHECKIN.c.pseudonym == pseudonym)
        .order_by(CHECKIN.c.created_at.desc(), CHECKIN.c.id.desc())
    )
    if before is not None:
        at, checkin_id = before
        stmt = stmt.where(or_(CHECKIN.c.created_at < at, and_(CHECKIN.c.created_at == at, CHECKIN.c.id < checkin_id)))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def delete_checkin(session: Session, row: Checkin) -> None:
    session.delete(row)
    forget_trend(session, row.pseudonym)


def forget_trend(session: Session, pseudonym: str) -> int:
    """Drop the trend cache (rebuilt from the remaining check-ins on the next check-in)."""
    return _count(session.exec(delete(TREND).where(TREND.c.pseudonym == pseudonym)))


def delete_checkins_of(session: Session, pseudonym: str) -> int:
    removed = _count(session.exec(delete(CHECKIN).where(CHECKIN.c.pseudonym == pseudonym)))
    return removed + forget_trend(session, pseudonym)


def has_checkin_in_week(session: Session, pseudonym: str, week: str) -> bool:
    stmt = select(CHECKIN.c.id).where(CHECKIN.c.pseudonym == pseudonym, CHECKIN.c.iso_week == week).limit(1)
    return session.exec(stmt).first() is not None


def purge_checkins_before(session: Session, cutoff: datetime, *, limit: int = 1000) -> int:
    """Delete up to ``limit`` check-ins created before ``cutoff`` and their subjects' trend caches."""
    old = list(
        session.exec(select(CHECKIN.c.id, CHECKIN.c.pseudonym).where(CHECKIN.c.created_at < cutoff).limit(limit))
    )
    if not old:
        return 0
    session.exec(delete(CHECKIN).where(CHECKIN.c.id.in_([r[0] for r in old])))
    session.exec(delete(TREND).where(TREND.c.pseudonym.in_(sorted({r[1] for r in old}))))
    return len(old)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
