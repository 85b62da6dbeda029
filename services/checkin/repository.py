"""Every query of the check-in service.

The group-commit writer's statements take a ``Connection`` and use SQLAlchemy Core with
executemany (one round trip per statement per batch); everything else takes a ``Session``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from services.checkin.models import Checkin, CheckinTrend, NudgeSchedule
from shared.webhooks import forget_subject

CHECKIN = Checkin.__table__  # type: ignore[attr-defined]
TREND = CheckinTrend.__table__  # type: ignore[attr-defined]
NUDGE = NudgeSchedule.__table__  # type: ignore[attr-defined]

# --- group-commit writer (Connection, Core) ------------------------------------------------------


def load_trends(conn: Connection, pseudonyms: Sequence[str], *, lock: bool) -> dict[str, tuple[str, bytes]]:
    stmt = core_select(TREND.c.pseudonym, TREND.c.key_id, TREND.c.trend).where(TREND.c.pseudonym.in_(pseudonyms))
    if lock:
        stmt = stmt.with_for_update()
    return {row.pseudonym: (row.key_id, bytes(row.trend)) for row in conn.execute(stmt)}


def recent_checkins(conn: Connection, pseudonym: str, since_week: str) -> list[Any]:
    stmt = core_select(CHECKIN.c.id, CHECKIN.c.iso_week, CHECKIN.c.created_at, CHECKIN.c.payload).where(
        CHECKIN.c.pseudonym == pseudonym, CHECKIN.c.iso_week >= since_week
    )
    return list(conn.execute(stmt))


# The writer's statements go straight to the driver's executemany: SQLAlchemy's per-row parameter
# processing was most of the writer's CPU. Datetimes are bound as sqlmodel's column type would.
_CHECKIN = ("id", "pseudonym", "key_id", "created_at", "iso_week", "payload", "note")
_TREND = ("pseudonym", "key_id", "trend", "updated_at")
_OUTBOX = ("msg_id", "subject", "payload", "headers", "created_at", "attempts")


def _db_time(conn: Connection) -> Callable[[datetime], Any]:
    """What sqlmodel's column type would bind: UTC; on SQLite, its naive text form."""
    if conn.dialect.name == "sqlite":
        return lambda v: v.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return lambda v: v.astimezone(UTC)


def _executemany(conn: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    if params:
        if conn.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        conn.exec_driver_sql(sql, params)


def _insert_sql(table: str, cols: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"  # noqa: S608 - fixed names


def insert_checkins(conn: Connection, rows: list[dict[str, Any]]) -> None:
    t = _db_time(conn)
    params = [
        (r["id"], r["pseudonym"], r["key_id"], t(r["created_at"]), r["iso_week"], r["payload"], r["note"]) for r in rows
    ]
    _executemany(conn, _insert_sql("checkin", _CHECKIN), params)


def save_trends(conn: Connection, rows: list[dict[str, Any]], *, existing: set[str]) -> None:
    t = _db_time(conn)
    update = [(r["key_id"], r["trend"], t(r["updated_at"]), r["pseudonym"]) for r in rows if r["pseudonym"] in existing]
    _executemany(conn, "UPDATE checkin_trend SET key_id = ?, trend = ?, updated_at = ? WHERE pseudonym = ?", update)
    insert = [
        (r["pseudonym"], r["key_id"], r["trend"], t(r["updated_at"])) for r in rows if r["pseudonym"] not in existing
    ]
    _executemany(conn, _insert_sql("checkin_trend", _TREND), insert)


def insert_outbox(conn: Connection, rows: list[dict[str, Any]]) -> None:
    t = _db_time(conn)
    params = [(r["msg_id"], r["subject"], r["payload"], r["headers"], t(r["created_at"]), r["attempts"]) for r in rows]
    _executemany(conn, _insert_sql("outbox", _OUTBOX), params)


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


# --- nudges ----------------------------------------------------------------------------------------


def get_nudge(session: Session, pseudonym: str) -> NudgeSchedule | None:
    return session.get(NudgeSchedule, pseudonym)


def delete_nudge(session: Session, pseudonym: str) -> int:
    """The schedule and every reminder still queued as a webhook (opt-out, withdrawal, erasure)."""
    removed = _count(session.exec(delete(NUDGE).where(NUDGE.c.pseudonym == pseudonym)))
    return removed + forget_subject(session, pseudonym)


def due_nudges(session: Session, now: datetime, limit: int) -> list[NudgeSchedule]:
    stmt = select(NudgeSchedule).where(NUDGE.c.next_due <= now).order_by(NUDGE.c.next_due).limit(limit)
    return list(session.exec(stmt))


def advance_nudge(session: Session, pseudonym: str, expected_due: datetime, values: dict[str, Any]) -> bool:
    """Move a schedule on only if nobody else did (compare-and-set on ``next_due``)."""
    stmt = update(NUDGE).where(NUDGE.c.pseudonym == pseudonym, NUDGE.c.next_due == expected_due).values(**values)
    return _count(session.exec(stmt)) == 1


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
