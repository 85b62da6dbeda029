"""Every query of the consent service's HRIS ingress (tables in ``models.py``)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.consent.hris.models import HrisOrgUnit, HrisSubject, HrisTrigger, HrisWebhookReceipt

# pg_advisory_xact_lock key serialising HRIS writes (any fixed 64-bit number; "HRIS" in ASCII).
_HRIS_LOCK = 0x48524953


def lock_hris(session: Session) -> None:
    """Serialise HRIS ingress transactions on PostgreSQL (SQLite serialises every writer anyway).

    HRIS traffic is small; serialising it makes every read-compare-write below race-free (two
    deliveries about one new employee, a move and its cycle check) without row locks on rows that
    may not exist yet.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _HRIS_LOCK})


def _receipt_insert_for(insert: Any) -> Any:
    table: Any = HrisWebhookReceipt.__table__  # type: ignore[attr-defined]
    # RETURNING tells a new row from a conflict on both backends (rowcount does not, on psycopg).
    return insert(table).on_conflict_do_nothing(index_elements=["webhook_id"]).returning(table.c.webhook_id)


_RECEIPT_INSERT = {"postgresql": _receipt_insert_for(postgresql.insert), "sqlite": _receipt_insert_for(sqlite.insert)}


def record_webhook(session: Session, webhook_id: str, vendor: str, events: int, at: datetime) -> bool:
    """Record a processed webhook id; False when it was already recorded (a replay or a retry).

    The transaction's first write: on PostgreSQL a concurrent delivery of the same id waits here
    for the first to commit, then finds it; on SQLite the write lock serialises them.
    """
    stmt = _RECEIPT_INSERT[session.get_bind().dialect.name]
    values = {"webhook_id": webhook_id, "vendor": vendor, "events": events, "received_at": at}
    return session.connection().execute(stmt, values).first() is not None


def purge_webhooks(session: Session, before: datetime) -> int:
    result = session.exec(delete(HrisWebhookReceipt).where(col(HrisWebhookReceipt.received_at) < before))
    return int(result.rowcount or 0)


def get_subject(session: Session, pseudonym: str) -> HrisSubject | None:
    return session.get(HrisSubject, pseudonym)


def subjects_in(session: Session, pseudonyms: Collection[str]) -> dict[str, HrisSubject]:
    """The stored rows of a batch's subjects, in one query."""
    if not pseudonyms:
        return {}
    stmt = select(HrisSubject).where(col(HrisSubject.pseudonym).in_(list(pseudonyms)))
    return {row.pseudonym: row for row in session.exec(stmt)}


def org_units_in(session: Session, units: Collection[str]) -> dict[str, HrisOrgUnit]:
    if not units:
        return {}
    stmt = select(HrisOrgUnit).where(col(HrisOrgUnit.org_unit).in_(list(units)))
    return {row.org_unit: row for row in session.exec(stmt)}


def get_org_unit(session: Session, org_unit: str) -> HrisOrgUnit | None:
    return session.get(HrisOrgUnit, org_unit)


def units_managed_by(session: Session, manager_ref: str) -> list[str]:
    stmt = select(HrisOrgUnit.org_unit).where(HrisOrgUnit.manager_ref == manager_ref).order_by(HrisOrgUnit.org_unit)
    return list(session.exec(stmt))


def get_trigger(session: Session, trigger_id: str) -> HrisTrigger | None:
    return session.get(HrisTrigger, trigger_id)


def save(session: Session, row: HrisSubject | HrisOrgUnit | HrisTrigger) -> None:
    session.add(row)  # flushed with the batch (or by the next query's autoflush)


def delete_subject(session: Session, pseudonym: str) -> int:
    result = session.exec(delete(HrisSubject).where(col(HrisSubject.pseudonym) == pseudonym))
    return int(result.rowcount or 0)


def org_units(session: Session) -> list[HrisOrgUnit]:
    return list(session.exec(select(HrisOrgUnit)))
