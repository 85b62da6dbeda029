"""After an erasure commits, make the deleted rows unrecoverable from the database files.

Deleting a row does not remove its bytes: SQLite leaves the cell in a free block or free page
and the page images that held it in the WAL; PostgreSQL leaves a dead tuple in its heap page until
VACUUM reuses the space. A carved ``data_key`` row, unwrapped with the master key, opens every
ciphertext of the erased person. So:

* SQLite: every connection runs with ``PRAGMA secure_delete=ON`` (``shared.db``), which overwrites
  deleted content and freed pages with zeros; after an erasure commits, :func:`scrub_after_commit`
  runs ``PRAGMA wal_checkpoint(TRUNCATE)`` in the committing thread: the zeroed pages are written
  back and the WAL, which still holds the earlier page images, is truncated to zero bytes.
* PostgreSQL: ``VACUUM (FULL)`` of the tables named (the key table, the directory): each is
  rewritten into a new file without the dead tuple and the old file is unlinked (a brief exclusive
  lock on a small table). A tuple that some open snapshot may still see is copied, not dropped, so
  the erasure only marks its tables pending, and a periodic job (:func:`start_scrubber`, through
  ``shared.periodic``) vacuums them once no session of the database has an older snapshot. What
  it cannot reach (WAL segments not yet recycled, WAL archives, backups) holds the wrapped key
  under the master key: rotating the master key and dropping the old one (``kinwell keys``) on the
  schedule of backup expiry makes those copies unreadable too (docs/operations.md).

Scrubbing follows a commit that already erased: a failure is logged (no personal data), never
raised into the erasure, and retried (PostgreSQL: the table stays pending; SQLite: the next erasure
checkpoints again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from tenacity import RetryCallState, retry, retry_if_result, stop_after_delay, wait_exponential

from shared.db import after_commit, is_sqlite

log = logging.getLogger("kinwell.shredding")

SCRUB_INTERVAL_SECONDS = 2.0
_XID = "SELECT pg_current_xact_id()::text"
_OLDEST_SNAPSHOT_AGE = """
SELECT max(age(backend_xmin)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
"""


class CheckpointIncomplete(Exception):
    """The WAL could not be checkpointed and truncated (a reader held it)."""


@dataclass
class _Pending:
    """PostgreSQL tables waiting to be vacuumed: table -> newest erasing transaction id."""

    tables: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, tables: Sequence[str], xid: int) -> None:
        with self.lock:
            for table in tables:
                self.tables[table] = max(self.tables.get(table, 0), xid)


_PENDING: dict[int, _Pending] = {}  # by id(engine): an engine lives as long as its service
_PENDING_LOCK = threading.Lock()


def _pending(engine: Engine) -> _Pending:
    with _PENDING_LOCK:
        return _PENDING.setdefault(id(engine), _Pending())


@dataclass(frozen=True)
class _Scrub:
    """One scrub per engine, tables and transaction (a frozen dataclass compares equal, so
    :func:`after_commit` registers it once however many subjects the transaction erased)."""

    engine: Engine
    tables: tuple[str, ...]
    erasing_xid: int | None

    def __call__(self) -> None:
        if self.erasing_xid is not None:
            _pending(self.engine).add(self.tables, self.erasing_xid)
            return
        try:
            _checkpoint_truncate(self.engine)
        except (SQLAlchemyError, CheckpointIncomplete) as exc:
            log.warning("scrub after erasure incomplete", extra={"error_type": type(exc).__name__})


def scrub_after_commit(session: Session, tables: Sequence[str]) -> None:
    """Once this transaction commits, scrub ``tables`` (erased rows leave no recoverable bytes).

    SQLite: at once, in the committing thread (milliseconds). PostgreSQL: marked pending for
    :func:`scrub_pending`, so a long transaction elsewhere never blocks the erasure.
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    xid = None if is_sqlite(engine) else int(session.connection().exec_driver_sql(_XID).scalar_one())
    after_commit(session, _Scrub(engine, tuple(sorted(tables)), xid))


def scrub(engine: Engine, tables: Sequence[str]) -> None:
    """Make deleted rows of ``tables`` unrecoverable from the database files now (no waiting)."""
    if is_sqlite(engine):
        _checkpoint_truncate(engine)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET lock_timeout = '10s'")
        quote = conn.dialect.identifier_preparer.quote
        for table in tables:
            conn.exec_driver_sql(f"VACUUM (FULL) {quote(table)}")


def scrub_pending(engine: Engine) -> int:
    """PostgreSQL: vacuum the pending tables whose erasures no open snapshot can see any more.

    Returns how many tables were rewritten. A table still seen by an older snapshot stays pending
    for the next run: a long transaction delays the scrub, it never cancels it.
    """
    pending = _pending(engine)
    with pending.lock:
        waiting = dict(pending.tables)
    if not waiting:
        return 0
    with engine.connect() as conn:
        current = int(conn.exec_driver_sql(_XID).scalar_one())
        oldest_age = conn.exec_driver_sql(_OLDEST_SNAPSHOT_AGE).scalar_one()
        conn.rollback()
    # The oldest open snapshot's xmin as a full transaction id: a row deleted by a transaction
    # older than it is invisible to every session, so VACUUM drops it instead of copying it.
    horizon = current - int(oldest_age) if oldest_age is not None else current + 1
    ready = sorted(table for table, xid in waiting.items() if xid < horizon)
    if ready:
        scrub(engine, ready)
        with pending.lock:
            for table in ready:
                if pending.tables.get(table) == waiting[table]:  # no newer erasure meanwhile
                    del pending.tables[table]
    return len(ready)


def start_scrubber(*tables: str) -> Any:
    """A service start hook: on PostgreSQL, run :func:`scrub_pending` every few seconds.

    ``tables`` (those the service scrubs) are marked pending at start, so an erasure whose scrub
    was lost to a restart is still scrubbed.
    """

    async def on_start(rt: Any) -> None:
        from shared.periodic import every

        engine: Engine = rt.engine
        if is_sqlite(engine):
            return
        with engine.connect() as conn:
            now = int(conn.exec_driver_sql(_XID).scalar_one())
            conn.rollback()
        _pending(engine).add(tables, now)
        rt.tasks.append(every(SCRUB_INTERVAL_SECONDS, lambda: scrub_pending(engine), name="scrub-erased"))

    return on_start


def _give_up(_state: RetryCallState) -> bool:
    raise CheckpointIncomplete


@retry(
    retry=retry_if_result(lambda done: not done),
    stop=stop_after_delay(10),
    wait=wait_exponential(multiplier=0.02, max=0.5),
    retry_error_callback=_give_up,
)
def _checkpoint_truncate(engine: Engine) -> bool:
    """True once the WAL is checkpointed and truncated; False while a reader holds it."""
    with engine.connect() as conn:
        busy, _log_frames, _checkpointed = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return int(busy) == 0
