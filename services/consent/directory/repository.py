"""Every query of the subject directory and contact details."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    delete,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.consent.directory.models import ContactDetail, DirectoryEntry
from shared.shredding import scrub_after_commit


@cache
def _insert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    directory: Any = DirectoryEntry.__table__  # type: ignore[attr-defined]
    return insert(directory).on_conflict_do_nothing(index_elements=["pseudonym"])


def _is_postgres(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def lock_subject(session: Session, pseudonym: str, sealed_employee_id: bytes, key_id: str, at: datetime) -> None:
    """Create the subject's directory entry if missing, then lock it for this transaction."""
    conn = session.connection()
    values = {"pseudonym": pseudonym, "employee_id": sealed_employee_id, "key_id": key_id, "created_at": at}
    conn.execute(_insert(conn.dialect.name), values)
    if _is_postgres(session):  # on SQLite the insert above already holds the write lock
        stmt = select(DirectoryEntry.pseudonym).where(DirectoryEntry.pseudonym == pseudonym).with_for_update()
        session.exec(stmt)


def get_directory(session: Session, pseudonym: str) -> DirectoryEntry | None:
    return session.get(DirectoryEntry, pseudonym)


def delete_directory(session: Session, pseudonym: str) -> int:
    delete_contact(session, pseudonym)
    result = session.exec(delete(DirectoryEntry).where(col(DirectoryEntry.pseudonym) == pseudonym))
    # Sealed under the long-lived master key: no carvable copy may stay in the files.
    scrub_after_commit(session, ("directory", "contact_detail"))
    return int(result.rowcount or 0)


def contact_of(session: Session, pseudonym: str) -> list[ContactDetail]:
    stmt = select(ContactDetail).where(ContactDetail.pseudonym == pseudonym).order_by(col(ContactDetail.field))
    return list(session.exec(stmt))


def delete_contact(session: Session, pseudonym: str) -> int:
    result = session.exec(delete(ContactDetail).where(col(ContactDetail.pseudonym) == pseudonym))
    removed = int(result.rowcount or 0)
    if removed:
        scrub_after_commit(session, ("contact_detail",))
    return removed


def in_directory(session: Session, pseudonym: str) -> bool:
    stmt = select(DirectoryEntry.pseudonym).where(DirectoryEntry.pseudonym == pseudonym)
    return session.exec(stmt).first() is not None


def add_contact(session: Session, details: Iterable[ContactDetail]) -> None:
    session.add_all(details)
