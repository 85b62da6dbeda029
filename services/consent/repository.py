"""Every query of the consent service.

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

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import and_, bindparam, delete, func, literal_column, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session, col, select

from services.consent.models import (
    Consent,
    ConsentHistory,
    ContactDetail,
    DirectoryEntry,
    ErasureAck,
    ErasureRequest,
    PolicyVersion,
    PurposeRow,
)
from shared.shredding import scrub_after_commit

GRANTED = "granted"
_CONNECTION = "consent_repository_connection"

# --- purposes and policy versions ---------------------------------------------------------------


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


@cache
def _current_version_stmt(share: bool) -> Any:
    stmt = select(PurposeRow.current_version).where(PurposeRow.name == bindparam("purpose"))
    return stmt.with_for_update(read=True) if share else stmt


def current_version(session: Session, purpose: str, *, share: bool = False) -> int | None:
    """The purpose's current version number; ``share`` reads it FOR SHARE (see above)."""
    # Core, not the ORM: this runs in every consent change.
    conn = _connection(session)
    prepared = _prepared(conn, f"current_version:{share}", _current_version_stmt(share), ("purpose",))
    row = prepared.one(conn, {"purpose": purpose})
    return None if row is None else int(row[0])


def current_versions(session: Session) -> list[PolicyVersion]:
    stmt = select(PolicyVersion).join(PurposeRow, _current_join()).order_by(col(PolicyVersion.purpose))
    return list(session.exec(stmt))


def get_version(session: Session, purpose: str, version: int) -> PolicyVersion | None:
    return session.get(PolicyVersion, (purpose, version))


def versions_of(session: Session, purpose: str | None = None) -> list[PolicyVersion]:
    stmt = select(PolicyVersion).order_by(col(PolicyVersion.purpose), col(PolicyVersion.version))
    if purpose is not None:
        stmt = stmt.where(PolicyVersion.purpose == purpose)
    return list(session.exec(stmt))


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


# --- directory ----------------------------------------------------------------------------------


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The hot path's writes, built once per dialect and executed with parameters (building a
    statement from literal values costs more than running it)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    directory: Any = DirectoryEntry.__table__  # type: ignore[attr-defined]
    consent: Any = Consent.__table__  # type: ignore[attr-defined]
    history: Any = ConsentHistory.__table__  # type: ignore[attr-defined]
    upsert = insert(consent)
    keep = ("pseudonym", "purpose")
    kept = (*keep, "kv_version")  # the KV version is raised by bump_kv_version only
    return {
        "directory": insert(directory).on_conflict_do_nothing(index_elements=["pseudonym"]),
        "consent": upsert.on_conflict_do_update(
            index_elements=list(keep),
            set_={c.name: upsert.excluded[c.name] for c in consent.columns if c.name not in kept},
        ),
        "history": history.insert(),
        "bump_kv_version": update(consent)
        .where(consent.c.pseudonym == bindparam("p_pseudonym"), consent.c.purpose == bindparam("p_purpose"))
        .values(kv_version=consent.c.kv_version + literal_column("1"))  # no bind: run on the raw cursor
        .returning(consent.c.kv_version),
    }


def _connection(session: Session) -> Connection:
    """The session's connection, looked up once per (nested) transaction: ``Session.connection()``
    costs about as much as a small statement, and a consent change runs several. Per nested
    transaction, because the ORM emits a SAVEPOINT only when a connection is asked for in it."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_CONNECTION)
    if cached is not None and cached[0] is transaction:
        return cast(Connection, cached[1])
    conn = session.connection()
    session.info[_CONNECTION] = (session.get_nested_transaction() or session.get_transaction(), conn)
    return conn


class _Prepared:
    """A hot statement compiled once per dialect and run on the driver's cursor, with the column
    types' own bind processors: SQLAlchemy's per-execution work (~35 us a statement here) costs
    three times what SQLite takes to run it, and a consent change runs four of them."""

    def __init__(self, stmt: Any, dialect: Dialect, keys: Iterable[str]) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=sorted(keys))
        self.sql = compiled.string
        self.names = list(compiled.positiontup) if compiled.positiontup is not None else None
        self.processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def one(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run it; the first row (a DB-API tuple) or None."""
        processed = {k: (self.processors[k](v) if k in self.processors else v) for k, v in values.items()}
        params: Any = [processed[n] for n in self.names] if self.names is not None else processed
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, params)
            return cursor.fetchone() if cursor.description is not None else None
        finally:
            cursor.close()


_PREPARED: dict[tuple[str, str, tuple[str, ...]], _Prepared] = {}


def _prepared(conn: Connection, name: str, stmt: Any, keys: Iterable[str]) -> _Prepared:
    key = (conn.dialect.name, name, tuple(keys))
    prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = _PREPARED[key] = _Prepared(stmt, conn.dialect, key[2])
    return prepared


def _run(session: Session, name: str, values: dict[str, Any]) -> None:
    conn = _connection(session)
    _prepared(conn, name, _statements(conn.dialect.name)[name], values).one(conn, values)


def _is_postgres(session: Session) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def lock_subject(session: Session, pseudonym: str, sealed_employee_id: bytes, key_id: str, at: datetime) -> None:
    """Create the subject's directory entry if missing, then lock it for this transaction."""
    _run(
        session,
        "directory",
        {"pseudonym": pseudonym, "employee_id": sealed_employee_id, "key_id": key_id, "created_at": at},
    )
    if _is_postgres(session):  # on SQLite the insert above already holds the write lock
        stmt = select(DirectoryEntry.pseudonym).where(DirectoryEntry.pseudonym == pseudonym).with_for_update()
        session.exec(stmt)


def get_directory(session: Session, pseudonym: str) -> DirectoryEntry | None:
    return session.get(DirectoryEntry, pseudonym)


def count_directory(session: Session, group: Collection[str] | None = None) -> int:
    stmt = select(func.count()).select_from(DirectoryEntry)
    if group is not None:
        stmt = stmt.where(col(DirectoryEntry.pseudonym).in_(list(group)))
    return int(session.exec(stmt).one())


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


# --- consents and history -----------------------------------------------------------------------


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
    conn = _connection(session)
    prepared = _prepared(conn, "consent_state", _consent_state_stmt(), ("pseudonym", "purpose"))
    row = prepared.one(conn, {"pseudonym": pseudonym, "purpose": purpose})
    return None if row is None else (row[0], row[1], row[2])


def save_consent(session: Session, values: dict[str, Any]) -> None:
    """Insert or replace the subject's current consent to a purpose (every column in ``values``)."""
    _run(session, "consent", values)


def bump_kv_version(session: Session, pseudonym: str, purpose: str) -> int | None:
    """Raise the consent's KV version and return it (None: no consent row). The update locks the
    row, so two changes of one key get their versions in the order they commit."""
    conn = _connection(session)
    values = {"p_pseudonym": pseudonym, "p_purpose": purpose}
    row = _prepared(conn, "bump_kv_version", _statements(conn.dialect.name)["bump_kv_version"], values).one(
        conn, values
    )
    return None if row is None else int(row[0])


def add_history(session: Session, values: dict[str, Any]) -> None:
    _run(session, "history", values)


def consents_of(session: Session, pseudonym: str) -> list[Consent]:
    return list(session.exec(select(Consent).where(Consent.pseudonym == pseudonym)))


def delete_consents(session: Session, pseudonym: str) -> int:
    result = session.exec(delete(Consent).where(col(Consent.pseudonym) == pseudonym))
    return int(result.rowcount or 0)


def granted_counts(session: Session, group: Collection[str] | None = None) -> dict[str, int]:
    """Granted consents per purpose among subjects in the directory (optionally one group)."""
    stmt = (
        select(Consent.purpose, func.count())
        .join(DirectoryEntry, DirectoryEntry.pseudonym == Consent.pseudonym)  # type: ignore[arg-type]
        .where(Consent.state == GRANTED)
        .group_by(col(Consent.purpose))
    )
    if group is not None:
        stmt = stmt.where(col(Consent.pseudonym).in_(list(group)))
    return {purpose: int(n) for purpose, n in session.exec(stmt)}


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


# --- erasure requests ---------------------------------------------------------------------------


def open_erasure_for(session: Session, owner_hash: str) -> ErasureRequest | None:
    stmt = select(ErasureRequest).where(
        ErasureRequest.owner_hash == owner_hash, col(ErasureRequest.completed_at).is_(None)
    )
    return session.exec(stmt).first()


def erasures_of(session: Session, owner_hash: str) -> list[ErasureRequest]:
    stmt = (
        select(ErasureRequest).where(ErasureRequest.owner_hash == owner_hash).order_by(col(ErasureRequest.requested_at))
    )
    return list(session.exec(stmt))


def get_erasure(session: Session, request_id: str) -> ErasureRequest | None:
    return session.get(ErasureRequest, request_id)


def lock_erasure(session: Session, request_id: str) -> ErasureRequest | None:
    """Lock the request by writing it first, so concurrent acknowledgements see each other."""
    session.exec(
        update(ErasureRequest)
        .where(col(ErasureRequest.id) == request_id)
        .values(attempts=ErasureRequest.attempts)
        .execution_options(synchronize_session=False)
    )
    return session.exec(select(ErasureRequest).where(ErasureRequest.id == request_id)).first()


def acks_of(session: Session, request_id: str) -> list[ErasureAck]:
    stmt = select(ErasureAck).where(ErasureAck.request_id == request_id).order_by(col(ErasureAck.service))
    return list(session.exec(stmt))


def stale_erasures(session: Session, sent_before: datetime, limit: int = 100) -> Sequence[ErasureRequest]:
    """Open requests last published before ``sent_before`` (skipping rows another replica holds)."""
    stmt = (
        select(ErasureRequest)
        .where(col(ErasureRequest.completed_at).is_(None), col(ErasureRequest.last_sent_at) < sent_before)
        .order_by(col(ErasureRequest.last_sent_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.exec(stmt).all()
