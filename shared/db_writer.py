"""Group commit: one writer thread, one connection, many requests per durable transaction.

Requests do their CPU work on the event loop and hand finished items to a ``BatchWriter``. Its
task takes whatever has queued up (up to ``max_batch``, measured by ``_size``), and its one
thread writes the batch in a single unit of work: one ``Session`` and one transaction on the
writer's own connection (``_apply(session, items)``), commits, and only then resolves each
request's future: a 2xx is never sent before its data is durable, as with ``SessionDep``. What
``_apply`` writes it writes as any service function does, through repositories and
``shared.bus.stage``, so the same function serves a request's session or a batch.

* SQLite: the writer's engine begins every transaction with ``BEGIN IMMEDIATE`` (the write lock is
  taken before ``_apply``'s first read, so a read-modify-write cannot interleave with another
  writer) and commits with ``PRAGMA synchronous=FULL`` (durable even on power loss); the batch
  shares one fsync. PostgreSQL: the given engine; row locks are ``_apply``'s business.
* A failing item fails alone: the batch is rolled back and written again in one transaction with
  each item in its own SAVEPOINT (what a failed item wrote or staged is undone, the rest commits).
  Items are applied without savepoints first, since a SAVEPOINT costs as much as a small item's
  own statements and items rarely fail. When that transaction fails too, outside the savepoints
  (at COMMIT: a deferred constraint, a serialization failure), each item is written in a
  transaction of its own, and only those that fail there are answered with their error.
  ``_apply`` may therefore run up to three times for an item.
* Outbox rows the batch stages are inserted in one statement and, once committed, handed to the
  process's relay (``shared.bus.outbox``, hand-over), which publishes them without a table read.
  With ``stored_timeout`` set, a batch is answered only once its KV puts are stored in their
  buckets (the consent service: a withdrawal's 200 means every gate already denies); when they are
  not stored in time, its items are answered with ``_unpublished()`` (503), though committed.
* On SQLite the writer deletes the rows the relay has had acknowledged, in its own thread between
  batches (the relay's ``deleter``): no delete waits for the write lock, nor a batch for a delete.
* ``stop()`` refuses new items with ``ServiceUnavailable`` (503), writes what is already queued
  (for up to ``timeout``), and fails what is left with 503.

Subclasses implement ``_apply(session, items) -> list[result]`` (one result per item, in order)
and may override ``_size(item)`` (default 1), ``_admit(items)``, a last check on the event loop
just before the batch is written (check-in asks the consent gate again there), and ``_session()``
(the consent writer holds its in-process write lock around each transaction). Used by check-in
ingest (``services.checkin.checkins.writer``), the signals route
(``services.checkin.signals.writer``) and every consent change (``services.consent.writer``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.bus.outbox import OutboxRelay, Pending, delete_published, handoff_session, insert_handed, relay_for
from shared.db import is_sqlite, make_engine
from shared.errors import ServiceUnavailable

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")


def writer_engine(engine: Engine) -> Engine:
    """The engine a writer commits through: on SQLite a one-connection engine of its own whose
    transactions begin IMMEDIATE and commit with ``synchronous=FULL``; elsewhere ``engine``."""
    if not is_sqlite(engine):
        return engine
    own = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)

    @event.listens_for(own, "connect")
    def _durable(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own: we do, IMMEDIATE
        dbapi_conn.execute("PRAGMA synchronous=FULL")

    @event.listens_for(own, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return own


def resolve(future: asyncio.Future[Any], outcome: Any) -> None:
    """Answer a request with its unit's outcome (a result, or the exception it raised); a request
    that was cancelled (client gone) is skipped: its unit committed anyway."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class BatchWriter(Generic[I, R]):
    """Serialises writes of ``I`` items into batched transactions on one connection."""

    log: ClassVar[logging.Logger] = logging.getLogger("kinwell.db_writer")  # subclasses name their own

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        max_batch: int,
        linger: float = 0.0,
        on_commit: Callable[[], None] | None = None,
        stored_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._writer_engine = writer_engine(engine)
        self.name = name
        self.max_batch = max_batch
        self.linger = linger
        self.on_commit = on_commit  # called on the event loop after a batch in which something committed
        self.stored_timeout = stored_timeout
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[R]]] | None = None
        self._queued = 0  # the total _size of what is in _queue
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._writing = False  # a batch is between the queue and its answers
        self._answering: set[asyncio.Task[None]] = set()  # batches waiting for their KV puts
        self._relay: OutboxRelay | None = None  # whose deleter this writer is (SQLite)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.batches = 0  # committed transactions
        self.rows = 0  # the total _size of committed items
        self.committed_at = 0.0

    # --- hooks -----------------------------------------------------------------------------------

    def _apply(self, session: Session, items: list[I]) -> list[R]:
        """Write ``items`` in the batch's session (never commit it); one result per item, in order."""
        raise NotImplementedError

    def _size(self, item: I) -> int:
        """How much of ``max_batch`` the item takes."""
        return 1

    async def _admit(self, items: list[I]) -> list[BaseException | None]:
        """Per item, None to write it, or the error to answer it with instead."""
        return [None] * len(items)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The session of one batch's transaction (executor thread)."""
        with Session(self._writer_engine, expire_on_commit=False) as session:
            yield session

    def _unpublished(self) -> BaseException:
        """The answer for a committed item whose KV puts were not stored within ``stored_timeout``."""
        return ServiceUnavailable("Saved; it takes effect in a moment.", code="change-pending")

    # --- event loop ------------------------------------------------------------------------------

    async def write(self, item: I) -> R:
        """Store ``item`` durably; returns once its transaction has committed."""
        if self._stopping:
            raise ServiceUnavailable("The service is shutting down.")
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._queued = 0
            self._task = asyncio.create_task(self._run(), name=self.name)
        assert self._queue is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        self._queued += self._size(item)
        return await future

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer: new items are refused, what is queued is written (for up to
        ``timeout``; what is left then fails with ``ServiceUnavailable``), and a batch being
        written finishes and is answered with how it ended."""
        self._stopping = True
        if self._relay is not None and self._relay.deleter == self._delete_published:
            self._relay.deleter = None  # the relay deletes on its own again
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._drained()), timeout)
            except TimeoutError:
                pass
            self._refuse_queued()
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping regardless
                pass
        self._refuse_queued()
        await asyncio.gather(*self._answering, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    async def _drained(self) -> None:
        """Until the queue is empty and no batch is being written."""
        assert self._queue is not None
        while not self._queue.empty() or self._writing:
            await asyncio.sleep(0.005)

    def _refuse_queued(self) -> None:
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(ServiceUnavailable("The service is shutting down."))
            self._queued = 0

    def _take(self) -> tuple[I, asyncio.Future[R]]:
        assert self._queue is not None
        entry = self._queue.get_nowait()
        self._queued -= self._size(entry[0])
        return entry

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            self._writing = True
            try:
                await self._write_next(loop, first)
            finally:
                self._writing = False

    async def _write_next(self, loop: asyncio.AbstractEventLoop, first: tuple[I, asyncio.Future[R]]) -> None:
        assert self._queue is not None
        self._queued -= self._size(first[0])
        batch = [first]
        if self.linger and self._queued < self.max_batch // 2 and not self._stopping:
            # A moment for more requests to join: per-item cost falls with batch size (one
            # BEGIN/COMMIT per batch), and the writer is rarely the bottleneck.
            try:
                await asyncio.sleep(self.linger)
            except asyncio.CancelledError:  # stopped before anything was written
                if not first[1].done():
                    first[1].set_exception(ServiceUnavailable("The service is shutting down."))
                raise
        size = self._size(first[0])
        while size < self.max_batch and not self._queue.empty():
            batch.append(self._take())
            size += self._size(batch[-1][0])
        try:
            refusals = await self._admit([item for item, _ in batch])
        except asyncio.CancelledError:  # stopped before anything was written
            for _, future in batch:
                if not future.done():
                    future.set_exception(ServiceUnavailable("The service is shutting down."))
            raise
        except Exception as exc:  # noqa: BLE001 - the check could not be made: write nothing
            self.log.warning("admission check failed", extra={"writer": self.name, "error_type": type(exc).__name__})
            refusals = [ServiceUnavailable("Please retry in a moment.")] * len(batch)
        for (_, future), refusal in zip(batch, refusals, strict=True):
            if refusal is not None:
                resolve(future, refusal)
        batch = [entry for entry, refusal in zip(batch, refusals, strict=True) if refusal is None]
        if not batch:
            return
        items = [item for item, _ in batch]
        writing = loop.run_in_executor(self._executor, self._write_batch, items)
        try:
            outcomes, rows = await asyncio.shield(writing)
        except asyncio.CancelledError:
            # Stopped mid-batch: the thread finishes the transaction either way, so its callers
            # still learn how it ended (a write that committed must not be answered with 503).
            self._settle(batch, *(await writing))
            raise
        self._settle(batch, outcomes, rows)

    def _settle(
        self, batch: list[tuple[I, asyncio.Future[R]]], outcomes: list[R | BaseException], rows: list[Pending]
    ) -> None:
        futures = [future for _, future in batch]
        committed = any(not isinstance(outcome, BaseException) for outcome in outcomes)
        relay = relay_for(self.engine) if rows else None
        if relay is not None and self.sqlite and relay.deleter is None and not self._stopping:
            relay.deleter = self._delete_published
            self._relay = relay
        stored = relay.handoff(rows) if relay is not None else None
        if committed and self.on_commit is not None:
            self.on_commit()
        if stored is None or stored.done() or self.stored_timeout is None:
            for future, outcome in zip(futures, outcomes, strict=True):
                resolve(future, outcome)
            return
        task = asyncio.ensure_future(self._answer_once_stored(futures, outcomes, stored))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer_once_stored(
        self, futures: list[asyncio.Future[R]], outcomes: list[R | BaseException], stored: asyncio.Future[None]
    ) -> None:
        assert self.stored_timeout is not None
        try:
            await asyncio.wait_for(stored, self.stored_timeout)
        except Exception as exc:  # noqa: BLE001 - committed, not yet effective: say so
            self.log.warning(
                "committed but not yet published", extra={"writer": self.name, "error_type": type(exc).__name__}
            )
            outcomes = [o if isinstance(o, BaseException) else self._unpublished() for o in outcomes]
        for future, outcome in zip(futures, outcomes, strict=True):
            resolve(future, outcome)

    async def _delete_published(self, msg_ids: list[str]) -> None:
        """The relay's deleter on SQLite: acknowledged outbox rows, deleted in the writer's thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._delete_rows, msg_ids)

    # --- executor thread -------------------------------------------------------------------------

    def _delete_rows(self, msg_ids: list[str]) -> None:
        with self._session() as session:
            delete_published(session, msg_ids)
            session.commit()

    def _close(self) -> None:
        if self._writer_engine is not self.engine:
            self._writer_engine.dispose()

    def _write_batch(self, items: list[I]) -> tuple[list[R | BaseException], list[Pending]]:
        try:
            return self._transaction(items, isolated=False)
        except Exception as exc:  # noqa: BLE001 - isolate the failing item(s) below
            if len(items) == 1:
                self.log.warning("write failed", extra={"writer": self.name, "error_type": type(exc).__name__})
                return [exc], []
        try:
            return self._transaction(items, isolated=True)
        except Exception as exc:  # noqa: BLE001 - the transaction itself failed (its commit): one by one
            self.log.warning("batch write failed", extra={"writer": self.name, "error_type": type(exc).__name__})
        outcomes: list[R | BaseException] = []
        rows: list[Pending] = []
        for item in items:  # a batch of one: its own transaction, its error its own
            outcome, committed = self._write_batch([item])
            outcomes += outcome
            rows += committed  # in commit order, as the relay publishes them
        return outcomes, rows

    def _transaction(self, items: list[I], *, isolated: bool) -> tuple[list[R | BaseException], list[Pending]]:
        with self._session() as session:
            staged = handoff_session(session)
            outcomes: list[R | BaseException]
            if not isolated:
                outcomes = list(self._apply(session, items))
            else:
                outcomes = []
                for item in items:
                    mark = len(staged)
                    try:
                        with session.begin_nested():
                            outcomes.append(self._apply(session, [item])[0])
                    except Exception as exc:  # noqa: BLE001 - this item's error, for its request
                        del staged[mark:]  # rolled back to the savepoint: nothing it staged goes out
                        outcomes.append(exc)
            rows = insert_handed(session, staged)  # one statement for the batch, in commit order
            session.commit()
        self.committed_at = time.perf_counter()  # benchmarks: commit -> effect
        self.batches += 1
        self.rows += sum(
            self._size(i) for i, o in zip(items, outcomes, strict=True) if not isinstance(o, BaseException)
        )
        return outcomes, rows
