"""Group commit for consent changes: one writer, many requests per transaction.

Every grant and withdrawal is a write transaction (consent row, history row with its signed
receipt, the KV put every gate watches, the event). On SQLite writers serialise on one lock, so a
session per request mostly queues (busy-handler sleeps of 1-100 ms) and holds a thread and a
pooled connection while it waits. Here requests hand their unit of work (a function of a session)
to one writer thread, which runs whatever has queued up in one transaction, each unit inside its
own SAVEPOINT, and commits once:

* a unit that raises is rolled back alone, and its request gets the error; the rest of the batch
  commits. Nothing a rolled-back unit staged is published. (Units run without savepoints, which
  cost as much as their own statements; when one raises, the batch is rolled back and run again
  with a SAVEPOINT around each unit. Units are functions of the session, so they can run twice.)
* the committed outbox rows are handed to the relay, which publishes them at once (no table read,
  see ``shared.bus.outbox``), and the relay's deletes of acknowledged rows come back here, to be
  done in the next transaction: on SQLite nothing else competes for the write lock.
* each request is answered only once its batch has committed **and** the batch's KV puts are
  stored in the bucket (or superseded by newer versions): a 2xx is never sent before its data is
  durable, and a withdrawal's 200 means the bucket already says ``withdrawn``, so every gate
  denies from then on, whatever the timing of the grant before it. When the puts are not stored
  within ``stored_timeout`` (NATS unreachable), the committed change is answered 503
  ``change-pending``: it takes effect once the relay can publish it, and reading one's consents
  shows it.

On SQLite the writer has its own connection that begins with ``BEGIN IMMEDIATE`` (the write lock
before the first read, so a unit's reads are never stale) and holds the service's in-process
write lock for the batch, so changes made outside it (erasure) queue without busy-waiting. On
PostgreSQL the same code runs on the service's engine with the row locks of ``repository.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import delete, event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.consent.deps import SERIALISED, ConsentContext
from shared.app import Runtime
from shared.bus.outbox import OutboxMessage, Pending, Staged, handoff_session, insert_handed
from shared.db import is_sqlite, make_engine
from shared.db_writer import resolve
from shared.errors import ServiceUnavailable

log = logging.getLogger("kinwell.consent.writer")

T = TypeVar("T")
CHECKPOINT_S = 0.5
DELETE_LINGER_S = 0.05
STORED_TIMEOUT_S = 5.0
Unit = Callable[[Session], Any]
_OUTBOX: Any = OutboxMessage.__table__  # type: ignore[attr-defined]


def _writer_engine(engine: Engine) -> Engine:
    """On SQLite, a one-connection engine whose transactions begin IMMEDIATE (savepoints work)."""
    if not is_sqlite(engine):
        return engine
    own = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)

    @event.listens_for(own, "connect")
    def _manual_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own (breaks SAVEPOINT)
        # The WAL is checkpointed by ConsentWriter's checkpointer, not inside a commit here.
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    @event.listens_for(own, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return own


class ConsentWriter:
    """Serialises consent writes into batched transactions on one thread."""

    def __init__(
        self,
        engine: Engine,
        ctx: ConsentContext,
        *,
        max_batch: int = 64,
        on_commit: Callable[[list[Pending]], Awaitable[None] | None] | None = None,
    ) -> None:
        self.engine = _writer_engine(engine)
        self._own_engine = self.engine is not engine
        self._app_engine = engine
        self._checkpointer: asyncio.Task[None] | None = None
        self._delete_timer: asyncio.TimerHandle | None = None
        self.ctx = ctx
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: asyncio.Queue[tuple[Unit, asyncio.Future[Any]] | None] | None = None
        self._deletes: list[tuple[list[str], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consent-writer")
        self._stopped = False
        self._answering: set[asyncio.Task[None]] = set()  # batches waiting for their KV puts
        self.stored_timeout = STORED_TIMEOUT_S
        self.batches = 0
        self.units = 0
        self.committed_at = 0.0  # perf_counter() when the last batch committed (benchmarks)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _ensure_running(self) -> asyncio.Queue[tuple[Unit, asyncio.Future[Any]] | None]:
        if self._stopped:
            raise ServiceUnavailable("The service is shutting down.")
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name="consent-writer")
            if self._own_engine and self._checkpointer is None:
                self._checkpointer = asyncio.create_task(self._checkpoints(), name="consent-wal-checkpoint")
        assert self._queue is not None
        return self._queue

    async def run(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit(session)`` in the next batch; returns its result once committed."""
        queue = self._ensure_running()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        queue.put_nowait((unit, future))
        return await future

    async def delete_outbox(self, msg_ids: list[str]) -> None:
        """Delete acknowledged outbox rows in the next transaction (the relay's ``deleter``)."""
        self._ensure_running()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._deletes.append((msg_ids, future))
        if self._delete_timer is None:
            # Not urgent: they ride along with the next batch, or go alone once the writer idles.
            self._delete_timer = asyncio.get_running_loop().call_later(DELETE_LINGER_S, self._wake_for_deletes)
        await future

    def _wake_for_deletes(self) -> None:
        self._delete_timer = None
        if self._deletes and self._queue is not None:
            self._queue.put_nowait(None)

    async def _checkpoints(self) -> None:
        """Checkpoint the WAL in the background (PASSIVE: never blocks the writer), so that the
        copy and fsync a checkpoint costs is not paid inside a batch's commit."""
        done = -1
        while True:
            await asyncio.sleep(CHECKPOINT_S)
            if self.batches == done:
                continue
            done = self.batches
            try:
                await asyncio.to_thread(self._checkpoint)
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("wal checkpoint failed", extra={"error_type": type(exc).__name__})

    def _checkpoint(self) -> None:
        with self._app_engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued (new work is refused), then stop."""
        self._stopped = True
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        if self._delete_timer is not None:
            self._delete_timer.cancel()
        if self._task is not None and not self._task.done():
            assert self._queue is not None
            self._queue.put_nowait(None)  # wakes an idle writer, which then sees it is stopping
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
            except Exception:  # noqa: BLE001 - stopping regardless
                pass
        failed = ServiceUnavailable("The service is shutting down.")
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(failed)
        for _, future in self._deletes:
            if not future.done():
                future.set_exception(failed)
        await asyncio.gather(*self._answering, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        if self._own_engine:
            self.engine.dispose()

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            units = [item for item in batch if item is not None]
            deletes, self._deletes = self._deletes, []
            acked = [msg_id for chunk, _ in deletes for msg_id in chunk]
            if not units and not acked:
                if self._stopped and self._queue.empty():
                    return
                continue
            outcomes, staged = await loop.run_in_executor(
                self._executor, self._write_batch, [unit for unit, _ in units], acked
            )
            futures = [future for _, future in units]
            stored = self.on_commit(staged) if staged and self.on_commit is not None else None
            if stored is not None:
                task = asyncio.ensure_future(self._answer_once_stored(futures, outcomes, stored))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            else:
                for future, outcome in zip(futures, outcomes, strict=True):
                    resolve(future, outcome)
            for _, future in deletes:
                if not future.done():
                    future.set_result(None)
            if self._stopped and self._queue.empty():
                return

    async def _answer_once_stored(
        self, futures: list[asyncio.Future[Any]], outcomes: list[Any], stored: Awaitable[None]
    ) -> None:
        """Answer a committed batch once its KV puts are stored (the module docstring)."""
        try:
            await asyncio.wait_for(stored, self.stored_timeout)
        except Exception as exc:  # noqa: BLE001 - committed, not yet effective: say so
            log.warning("consent changes committed but not yet published", extra={"error_type": type(exc).__name__})
            pending = ServiceUnavailable(
                "The change is recorded and takes effect as soon as it reaches every service; "
                "read your consents to see it.",
                code="change-pending",
            )
            outcomes = [o if isinstance(o, BaseException) else pending for o in outcomes]
        for future, outcome in zip(futures, outcomes, strict=True):
            resolve(future, outcome)

    # --- writer thread ---------------------------------------------------------------------------

    def _write_batch(self, units: list[Unit], acked: list[str]) -> tuple[list[Any], list[Pending]]:
        try:
            result = self._transaction(units, acked)
            self.batches += 1
            self.units += len(units)
            return result
        except Exception as exc:  # noqa: BLE001 - the commit itself failed: isolate each unit
            log.warning("consent write batch failed", extra={"error_type": type(exc).__name__})
            if len(units) + bool(acked) <= 1:
                return [exc] * len(units), []
        outcomes: list[Any] = []
        staged: list[Pending] = []
        for unit in units:
            one, rows = self._write_batch([unit], [])
            outcomes += one
            staged += rows
        if acked:
            self._write_batch([], acked)
        return outcomes, staged

    def _transaction(self, units: list[Unit], acked: list[str]) -> tuple[list[Any], list[Pending]]:
        with self.ctx.write_locked(self.engine), Session(self.engine, expire_on_commit=False) as session:
            self.ctx.mark_write_lock_held(session)
            if self._own_engine:
                session.info[SERIALISED] = True  # BEGIN IMMEDIATE: every read below is under the write lock
            try:
                # Optimistic: no savepoints (a SAVEPOINT and its RELEASE cost as much as a unit's
                # own statements), since units rarely fail ...
                outcomes, staged = self._run_units(session, units, isolated=False)
            except _UnitFailed:
                # ... and when one does, the batch starts again with each unit in its own savepoint.
                session.rollback()
                outcomes, staged = self._run_units(session, units, isolated=True)
            rows = insert_handed(session, staged)  # one statement for the batch, in commit order
            if acked:
                session.execute(delete(_OUTBOX).where(_OUTBOX.c.msg_id.in_(acked)))
            session.commit()
            self.committed_at = time.perf_counter()
            return outcomes, rows

    @staticmethod
    def _run_units(session: Session, units: list[Unit], *, isolated: bool) -> tuple[list[Any], list[Staged]]:
        outcomes: list[Any] = []
        staged: list[Staged] = []
        for unit in units:
            rows = handoff_session(session)
            if not isolated:
                try:
                    outcomes.append(unit(session))
                except Exception as exc:
                    raise _UnitFailed from exc
                staged += rows
                continue
            try:
                with session.begin_nested():
                    outcome = unit(session)
            except Exception as exc:  # noqa: BLE001 - this unit's error, for its request
                outcomes.append(exc)
                continue
            outcomes.append(outcome)
            staged += rows
        return outcomes, staged


class _UnitFailed(Exception):
    """A unit raised in an optimistic batch: roll back and run the batch with savepoints."""


def writer_of(rt: Runtime, ctx: ConsentContext) -> ConsentWriter:
    """The service's writer, created on first use (its relay may not have started yet: rows wait)."""
    writer = ctx.writer_slot.writer
    if writer is None:
        writer = ConsentWriter(rt.engine, ctx, on_commit=rt.relay.handoff, max_batch=ctx.settings.writer_max_batch)
        rt.relay.deleter = writer.delete_outbox
        ctx.writer_slot.writer = writer
    return writer


async def get_writer(request: Request) -> ConsentWriter:
    return writer_of(request.app.state.runtime, request.app.state.consent)


def writer_stopper(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    """Lifespan hook: finish the batch in hand; the relay deletes on its own again."""

    async def stop(rt: Runtime) -> None:
        writer, ctx.writer_slot.writer = ctx.writer_slot.writer, None
        if writer is not None:
            rt.relay.deleter = None
            await writer.stop()

    return stop


WriterDep = Annotated[ConsentWriter, Depends(get_writer)]
