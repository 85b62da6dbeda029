"""Every query of consents and their history.

Locking, so that concurrent requests cannot reorder a subject's consent events or slip a grant
past a policy change:

* a change to one subject first upserts and locks the subject's directory row;
* a grant reads its purpose row ``FOR SHARE``; publishing a policy version first writes it, so
  a grant of the old version either commits before the lapse (and is lapsed) or waits and then
  sees the new version (and is refused);
* an erasure acknowledgement first writes its request row, so the last of several concurrent
  acknowledgements sees the others and completes the request.

Every lock is taken by the transaction's first *write*: SQLite ignores ``FOR UPDATE`` but its
first write takes the database's write lock, and reads before it would see a stale snapshot.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    literal_column,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from services.consent.consents.models import GRANTED, Consent, ConsentHistory


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The hot path's writes, built once per dialect and executed with parameters (building a
    statement from literal values costs more than running it)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    consent: Any = Consent.__table__  # type: ignore[attr-defined]
    history: Any = ConsentHistory.__table__  # type: ignore[attr-defined]
    upsert = insert(consent)
    keep = ("pseudonym", "purpose")
    kept = (*keep, "kv_version")  # the KV version is raised by bump_kv_version only
    return {
        "consent": upsert.on_conflict_do_update(
            index_elements=list(keep),
            set_={c.name: upsert.excluded[c.name] for c in consent.columns if c.name not in kept},
        ),
        "history": history.insert(),
        "bump_kv_version": update(consent)
        .where(consent.c.pseudonym == bindparam("p_pseudonym"), consent.c.purpose == bindparam("p_purpose"))
        .values(kv_version=consent.c.kv_version + literal_column("1"))
        .returning(consent.c.kv_version),
    }


def _run(session: Session, name: str, values: dict[str, Any]) -> None:
    conn = session.connection()
    conn.execute(_statements(conn.dialect.name)[name], values)


def get_consent(session: Session, pseudonym: str, purpose: str) -> Consent | None:
    stmt = select(Consent).where(Consent.pseudonym == pseudonym, Consent.purpose == purpose)
    return session.exec(stmt).first()


@cache
def _consent_state_stmt() -> Any:
    return select(Consent.state, Consent.policy_version, Consent.language).where(
        Consent.pseudonym == bindparam("pseudonym"), Consent.purpose == bindparam("purpose")
    )


def consent_state(session: Session, pseudonym: str, purpose: str) -> tuple[str, int, str | None] | None:
    """(state, policy version, language) of the subject's consent to ``purpose`` (Core: hot path)."""
    row = session.connection().execute(_consent_state_stmt(), {"pseudonym": pseudonym, "purpose": purpose}).first()
    return None if row is None else (row[0], row[1], row[2])


def save_consent(session: Session, values: dict[str, Any]) -> None:
    """Insert or replace the subject's current consent to a purpose (every column in ``values``)."""
    _run(session, "consent", values)


def bump_kv_version(session: Session, pseudonym: str, purpose: str) -> int | None:
    """Raise the consent's KV version and return it (None: no consent row). The update locks the
    row, so two changes of one key get their versions in the order they commit."""
    conn = session.connection()
    values = {"p_pseudonym": pseudonym, "p_purpose": purpose}
    row = conn.execute(_statements(conn.dialect.name)["bump_kv_version"], values).first()
    return None if row is None else int(row[0])


def add_history(session: Session, values: dict[str, Any]) -> None:
    _run(session, "history", values)


def consents_of(session: Session, pseudonym: str) -> list[Consent]:
    return list(session.exec(select(Consent).where(Consent.pseudonym == pseudonym)))


def delete_consents(session: Session, pseudonym: str) -> int:
    result = session.exec(delete(Consent).where(col(Consent.pseudonym) == pseudonym))
    return int(result.rowcount or 0)


def history_of(
    session: Session, pseudonym: str, after_id: int | None = None, limit: int | None = None
) -> list[ConsentHistory]:
    """The subject's history, oldest first; from after ``after_id`` and at most ``limit`` rows."""
    stmt = select(ConsentHistory).where(ConsentHistory.pseudonym == pseudonym).order_by(col(ConsentHistory.id))
    if after_id is not None:
        stmt = stmt.where(col(ConsentHistory.id) > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def receipt_of(session: Session, pseudonym: str, receipt_id: str) -> ConsentHistory | None:
    stmt = select(ConsentHistory).where(ConsentHistory.receipt_id == receipt_id, ConsentHistory.pseudonym == pseudonym)
    return session.exec(stmt).first()


def unlink_history(session: Session, pseudonym: str, erasure_request_id: str) -> int:
    """Keep receipt ids, purposes, states and times; drop the pseudonym and the signed receipts."""
    result = session.exec(
        update(ConsentHistory)
        .where(col(ConsentHistory.pseudonym) == pseudonym)
        .values(pseudonym=None, receipt_jws=None, erasure_request_id=erasure_request_id)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def lapse_granted(session: Session, purpose: str, new_version: int, at: datetime) -> list[tuple[str, int, int]]:
    """Lapse every granted consent to ``purpose``; returns (pseudonym, version consented to, KV
    version) of each."""
    stmt = (
        update(Consent)
        .where(col(Consent.purpose) == purpose, col(Consent.state) == GRANTED)
        .values(
            state="lapsed", changed_at=at, lapsed_by_version=new_version, receipt_id=None,
            kv_version=col(Consent.kv_version) + 1,
        )
        .returning(col(Consent.pseudonym), col(Consent.policy_version), col(Consent.kv_version))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return [(row[0], row[1], row[2]) for row in session.exec(stmt)]


def granted_among(session: Session, pseudonyms: Collection[str], purpose: str) -> set[str]:
    """Which of ``pseudonyms`` currently grant ``purpose``, in one query."""
    if not pseudonyms:
        return set()
    stmt = select(Consent.pseudonym).where(
        col(Consent.pseudonym).in_(list(pseudonyms)), Consent.purpose == purpose, Consent.state == GRANTED
    )
    return set(session.exec(stmt))
