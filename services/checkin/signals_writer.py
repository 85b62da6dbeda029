"""Group commit for signal batches: one thread, one connection, many batches per transaction.

Each ``POST /v1/signals`` hands its prepared rows here and waits: the writer takes every batch
queued meanwhile (up to ``max_rows`` rows), upserts their rows in bulk
(``signals_repository.upsert_days``: multi-row statements on SQLite, one ``executemany`` on
PostgreSQL), commits (SQLite: ``BEGIN IMMEDIATE`` and ``synchronous=FULL``, one fsync shared by the
group), and only then resolves each request, so a 200 is never sent before its rows are durable. A
failing group is retried batch by batch so that only the failing request sees the error. The
machinery is ``shared.db_writer.BatchWriter``, as for the check-in writer (``writer.py``); here
for rows that need no read-modify-write.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Connection, Engine

from services.checkin import signals_repository as repo
from shared.db_writer import BatchWriter

Rows = list[tuple[Any, ...]]


class SignalWriter(BatchWriter[Rows, None]):
    """Serialises signal batches into grouped transactions on one connection."""

    log = logging.getLogger("kinwell.checkin.signals")

    def __init__(self, engine: Engine, *, max_rows: int = 20_000, linger: float = 0.0) -> None:
        super().__init__(engine, name="signals-writer", max_batch=max_rows, linger=linger)

    async def write(self, item: Rows) -> None:
        """Store the rows durably; returns once their transaction has committed."""
        if item:
            await super().write(item)

    def _size(self, item: Rows) -> int:
        return len(item)

    def _apply(self, conn: Connection, items: list[Rows]) -> list[None]:
        repo.upsert_days(conn, items)
        return [None] * len(items)
