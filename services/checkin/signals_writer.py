"""Group commit for signal batches: one thread, one connection, many batches per transaction.

Each ``POST /v1/signals`` hands its prepared rows here and waits: the writer takes every batch
queued meanwhile, upserts their rows in bulk (``signals_repository.upsert_days``: multi-row
statements on SQLite, one ``executemany`` on PostgreSQL), commits (SQLite: ``BEGIN IMMEDIATE`` and
``synchronous=FULL``, one fsync shared by the group), and only then resolves each
request, so a 200 is never sent before its rows are durable. A failing group is retried batch by
batch so that only the failing request sees the error. The same design as the check-in writer
(``writer.py``), for rows that need no read-modify-write.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Connection, Engine

from services.checkin import signals_repository as repo
from shared.errors import ServiceUnavailable

log = logging.getLogger("kinwell.checkin.signals")

Rows = list[tuple[Any, ...]]


class SignalWriter:
    def __init__(self, engine: Engine, *, max_rows: int = 20_000, linger: float = 0.0) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.max_rows = max_rows
        self.linger = linger
        self._queue: asyncio.Queue[tuple[Rows, asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signals-writer")
        self._conn: Connection | None = None  # touched only on the executor's thread
        self.groups = 0
        self.rows = 0

    async def write(self, rows: Rows) -> None:
        """Store ``rows`` durably; returns once their transaction has committed."""
        if not rows:
            return
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name="signals-writer")
        assert self._queue is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((rows, future))
        await future

    async def stop(self, *_rt: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping regardless
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(ServiceUnavailable("The service is shutting down."))
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            if self.linger:
                await asyncio.sleep(self.linger)
            size = len(group[0][0])
            while size < self.max_rows and not self._queue.empty():
                group.append(self._queue.get_nowait())
                size += len(group[-1][0])
            outcomes = await loop.run_in_executor(self._executor, self._write_group, [rows for rows, _ in group])
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

    # --- executor thread -------------------------------------------------------------------------

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect()
            if self.sqlite:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
            self._conn = conn
        return self._conn

    def _write_group(self, group: list[Rows]) -> list[BaseException | None]:
        try:
            self._transaction(group)
            self.groups += 1
            self.rows += sum(len(rows) for rows in group)
            return [None] * len(group)
        except Exception as exc:  # noqa: BLE001 - isolate the failing batch below
            if len(group) == 1:
                log.warning("signal write failed", extra={"error_type": type(exc).__name__})
                return [exc]
        return [self._write_group([rows])[0] for rows in group]

    def _transaction(self, group: list[Rows]) -> None:
        conn = self._connection()
        if not self.sqlite:
            try:
                with conn.begin():
                    repo.upsert_days(conn, group)
            except BaseException:
                if conn.invalidated:  # the server went away: reconnect on next use
                    self._conn = None
                raise
            return
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            repo.upsert_days(conn, group)
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            try:
                conn.exec_driver_sql("ROLLBACK")
            except Exception:  # noqa: BLE001 - a broken connection is replaced on next use
                self._conn = None
                conn.invalidate()
            raise
