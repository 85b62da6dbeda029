"""Every query about purposes and policy versions.

A grant reads its purpose row ``FOR SHARE``; publishing a policy version first writes it, so a
grant of the old version either commits before the lapse (and is lapsed) or waits and then sees
the new version (and is refused). SQLite ignores ``FOR UPDATE`` but its first write takes the
database's write lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    or_,
    update,
)
from sqlmodel import Session, col, select

from services.consent.deps import ConsentContext
from services.consent.policy.models import PolicyVersion, PurposeRow


def get_purpose(session: Session, name: str, *, share: bool = False) -> PurposeRow | None:
    stmt = select(PurposeRow).where(PurposeRow.name == name)
    if share:
        stmt = stmt.with_for_update(read=True)
    return session.exec(stmt).first()


def lock_purpose(session: Session, name: str, at: datetime) -> PurposeRow | None:
    """Lock the purpose row by writing it first (SQLite ignores FOR UPDATE; a write serialises)."""
    session.exec(update(PurposeRow).where(col(PurposeRow.name) == name).values(updated_at=at))
    return session.exec(select(PurposeRow).where(PurposeRow.name == name)).first()


def _current_join() -> Any:
    return and_(
        col(PurposeRow.name) == col(PolicyVersion.purpose),
        col(PurposeRow.current_version) == col(PolicyVersion.version),
    )


_CURRENT_VERSION = select(PurposeRow.current_version).where(PurposeRow.name == bindparam("purpose"))
_CURRENT_VERSION_SHARED = _CURRENT_VERSION.with_for_update(read=True)


def current_version(session: Session, purpose: str, *, share: bool = False) -> int | None:
    """The purpose's current version number; ``share`` reads it FOR SHARE (see above)."""
    stmt = _CURRENT_VERSION_SHARED if share else _CURRENT_VERSION
    row = session.connection().execute(stmt, {"purpose": purpose}).first()
    return None if row is None else int(row[0])


def current_versions(session: Session) -> list[PolicyVersion]:
    stmt = select(PolicyVersion).join(PurposeRow, _current_join()).order_by(col(PolicyVersion.purpose))
    return list(session.exec(stmt))


def get_version(session: Session, purpose: str, version: int) -> PolicyVersion | None:
    return session.get(PolicyVersion, (purpose, version))


def versions_of(session: Session, purpose: str, after: int | None, limit: int) -> list[PolicyVersion]:
    """Up to ``limit`` versions of ``purpose`` after version ``after``, oldest first."""
    stmt = select(PolicyVersion).where(PolicyVersion.purpose == purpose).order_by(col(PolicyVersion.version))
    if after is not None:
        stmt = stmt.where(col(PolicyVersion.version) > after)
    return list(session.exec(stmt.limit(limit)))


def versions_after(session: Session, after: tuple[str, int] | None, limit: int) -> list[tuple[PolicyVersion, int]]:
    """Up to ``limit`` versions of every purpose after ``after`` (purpose, version), in that
    order, each with its purpose's current version number."""
    stmt = (
        select(PolicyVersion, PurposeRow.current_version)
        .join(PurposeRow, col(PurposeRow.name) == col(PolicyVersion.purpose))
        .order_by(col(PolicyVersion.purpose), col(PolicyVersion.version))
        .limit(limit)
    )
    if after is not None:
        purpose, version = after
        stmt = stmt.where(
            or_(
                col(PolicyVersion.purpose) > purpose,
                and_(col(PolicyVersion.purpose) == purpose, col(PolicyVersion.version) > version),
            )
        )
    return [(row, int(current)) for row, current in session.exec(stmt)]


def policy_version(session: Session, ctx: ConsentContext, purpose: str, version: int) -> PolicyVersion | None:
    """A published policy version, from the process cache or the database (then cached, detached):
    versions are never edited once published."""
    cached = ctx.policies.get((purpose, version))
    if cached is None:
        row = get_version(session, purpose, version)
        if row is None:
            return None
        cached = ctx.policies[(purpose, version)] = PolicyVersion.model_validate(row.model_dump())
    return cached


def save(session: Session, *rows: PolicyVersion | PurposeRow) -> None:
    session.add_all(rows)  # flushed with the transaction (or by the next query's autoflush)
