"""Every query of a contribution producer, over its :class:`~shared.contributions.tables.ContributionTables`.

Statements are SQLAlchemy Core on a ``Connection`` (a session's, or check-in's group-commit writer's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from shared.contributions.tables import ContributionTables


def assign(conn: Connection, t: ContributionTables, pseudonym: str, org_unit: str | None, since: date) -> None:
    a = t.assignments
    done = conn.execute(
        update(a).where(a.c.pseudonym == pseudonym, a.c.effective_from == since).values(org_unit=org_unit)
    )
    if not done.rowcount:
        conn.execute(insert(a).values(pseudonym=pseudonym, org_unit=org_unit, effective_from=since))


def _latest(t: ContributionTables, on: date, pseudonyms: Sequence[str] | None = None) -> Any:
    a = t.assignments
    stmt = select(a.c.pseudonym, func.max(a.c.effective_from).label("since")).where(a.c.effective_from <= on)
    if pseudonyms is not None:
        stmt = stmt.where(a.c.pseudonym.in_(sorted(set(pseudonyms))))
    latest = stmt.group_by(a.c.pseudonym).subquery()
    return latest, (a.c.pseudonym == latest.c.pseudonym) & (a.c.effective_from == latest.c.since)


def units_at(conn: Connection, t: ContributionTables, pseudonyms: Sequence[str], on: date) -> dict[str, str | None]:
    """Each subject's org unit on ``on``: their latest assignment effective on or before it."""
    latest, on_latest = _latest(t, on, pseudonyms)
    stmt = select(t.assignments.c.pseudonym, t.assignments.c.org_unit).join(latest, on_latest)
    return {row.pseudonym: row.org_unit for row in conn.execute(stmt)}


def members_on(conn: Connection, t: ContributionTables, on: date) -> dict[str, int]:
    """How many subjects each org unit has on ``on`` (its own members, not its sub-units')."""
    latest, on_latest = _latest(t, on)
    unit = t.assignments.c.org_unit
    stmt = select(unit, func.count()).join(latest, on_latest).where(unit.is_not(None)).group_by(unit)
    return {row[0]: int(row[1]) for row in conn.execute(stmt)}


def assignments_of(conn: Connection, t: ContributionTables, pseudonym: str) -> list[Any]:
    a = t.assignments
    return list(conn.execute(select(a).where(a.c.pseudonym == pseudonym).order_by(a.c.effective_from)))


def delete_assignments_of(conn: Connection, t: ContributionTables, pseudonym: str) -> int:
    return int(conn.execute(delete(t.assignments).where(t.assignments.c.pseudonym == pseudonym)).rowcount or 0)


def put_org_unit(
    conn: Connection, t: ContributionTables, unit: str, parent: str | None, active: bool, since: date
) -> None:
    """The unit's state from ``since`` on; an older change than the one held is ignored."""
    o = t.org_units
    held = conn.execute(select(o.c.effective_from).where(o.c.org_unit == unit)).first()
    values = {"parent": parent, "active": active, "effective_from": since}
    if held is None:
        conn.execute(insert(o).values(org_unit=unit, **values))
    elif held[0] <= since:
        conn.execute(update(o).where(o.c.org_unit == unit).values(**values))


def parents(conn: Connection, t: ContributionTables) -> dict[str, str | None]:
    """Each active unit's parent (None for a root)."""
    o = t.org_units
    return {row.org_unit: row.parent for row in conn.execute(select(o.c.org_unit, o.c.parent).where(o.c.active))}


_PENDING = ("msg_id", "period_token", "subject", "payload")


def insert_pending(conn: Connection, t: ContributionTables, rows: list[dict[str, Any]]) -> None:
    """Straight to the driver's executemany (check-in's writer calls this per batch: SQLAlchemy's
    per-row parameter processing would cost more than the insert)."""
    if rows:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO {t.pending.name} ({', '.join(_PENDING)}) VALUES ({', '.join([mark] * len(_PENDING))})"  # noqa: S608 - fixed names
        conn.exec_driver_sql(sql, [tuple(r[c] for c in _PENDING) for r in rows])


def take_pending(conn: Connection, t: ContributionTables, limit: int) -> list[Any]:
    stmt = select(t.pending).limit(limit)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update(skip_locked=True)  # replicas release disjoint batches
    return list(conn.execute(stmt))


def delete_pending(conn: Connection, t: ContributionTables, msg_ids: Iterable[str]) -> None:
    conn.execute(delete(t.pending).where(t.pending.c.msg_id.in_(list(msg_ids))))


def delete_pending_for_token(conn: Connection, t: ContributionTables, period_token: str) -> int:
    return int(conn.execute(delete(t.pending).where(t.pending.c.period_token == period_token)).rowcount or 0)


def pending_has(conn: Connection, t: ContributionTables, msg_id: str) -> bool:
    return conn.execute(select(t.pending.c.msg_id).where(t.pending.c.msg_id == msg_id)).first() is not None
