"""Transactional outbox: events are rows written in the same transaction as the state change.

A rolled-back transaction therefore publishes nothing, and a committed one publishes at least
once; JetStream de-duplicates on ``Nats-Msg-Id`` (the event id), so consumers see it once.

The relay publishes a batch of pending rows in two steps. KV puts first, each a versioned
compare-and-set (``shared.bus.kvput``: a put older than what the bucket holds never wins, so
their order, their relay and their retries do not matter). Then the events, pipelined: written
on the one connection in outbox order, each with its own reply subject under one inbox
subscription, the acknowledgements counted when they arrive (~30 us of CPU a message instead of a
round trip each). Events go after the puts so that a consumer acting on a ``consent.changed``
event (deleting data) normally finds the bucket already changed. Events need no other order: each
is self-contained and de-duplicated by id.

Hand-over. A group-commit writer (``shared.db_writer.BatchWriter``) inserts the rows its batch
staged itself (``handoff_session`` / ``insert_handed``, one statement) and, once committed, hands
them to its process's relay, which publishes them at once with no table read. The rows stay in
the table until acknowledged: a crash or a failed publish leaves them to the table path, which the
relay reads whenever another transaction in this process committed outbox rows (``notify``), at
start-up, every ``poll_interval``, and after any failure. ``handoff`` returns a future that is done
once the rows' KV puts are stored: the consent service answers a change only then (a withdrawal's
200 means every gate already denies). On SQLite the writer also becomes the relay's ``deleter``:
acknowledged rows are deleted on the writer's own connection and thread, between its batches, so
the relay's deletes never wait in SQLite's busy handler for the write lock the writer holds (and
never make a batch wait for theirs); until deleted, a table read skips them.

A row that JetStream will not take is retried ``max_attempts`` times, then parked in
``outbox_dead`` (``shared/bus/parking.py``) so that it stops holding up the rest. A round whose
other messages are acknowledged waits at most ``straggler_timeout`` after the last answer for the
ones still silent (a publish the broker refuses for lack of permission is never answered).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import Column, LargeBinary, Table, bindparam, delete, func, insert, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from shared import faults
from shared.bus import parking
from shared.bus.connection import Bus
from shared.bus.failures import retry_delay
from shared.bus.kvput import KV_PREFIX, REFUSED, STORED, VERSION_HEADER, acknowledged, put_all
from shared.db import after_commit
from shared.events.base import Event
from shared.telemetry import EVENTS_PUBLISHED, inject_headers
from shared.telemetry import counted as counted_subject

log = logging.getLogger("kinwell.outbox")

ACK_TIMEOUT_S = 10.0
STRAGGLER_TIMEOUT_S = 2.0
MAX_ATTEMPTS = 5
# A session whose owner hands its committed outbox rows to the relay itself keeps them here.
HANDOFF_KEY = "kinwell_outbox_handoff"
_BATCH = text("SELECT seq, msg_id, subject, payload, headers FROM outbox ORDER BY seq LIMIT :n")
_PRESENT = text("SELECT msg_id FROM outbox WHERE msg_id IN :ids").bindparams(bindparam("ids", expanding=True))


class OutboxMessage(SQLModel, table=True):
    """A message waiting to be published; deleted once JetStream has acknowledged it."""

    __tablename__ = "outbox"

    seq: int | None = Field(default=None, primary_key=True)
    msg_id: str = Field(max_length=100, unique=True)
    subject: str = Field(max_length=255)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: str = Field(default="{}")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    attempts: int = Field(default=0)


@dataclass(frozen=True, slots=True)
class Staged:
    """A message staged in a hand-off session, not yet inserted."""

    msg_id: str
    subject: str
    payload: bytes
    headers: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Pending:
    """A committed outbox row, as the relay publishes it (rows are named by ``msg_id``)."""

    msg_id: str
    subject: str
    payload: bytes
    headers: str


_TABLE: Table = OutboxMessage.__table__  # type: ignore[attr-defined]

# One relay per engine in a process; staging wakes it after commit.
_RELAYS: dict[int, OutboxRelay] = {}


def relay_for(engine: Engine) -> OutboxRelay | None:
    """The running relay of this process that publishes ``engine``'s outbox, if any."""
    return _RELAYS.get(id(engine))


def stage(session: Session, event: Event) -> None:
    """Queue ``event`` for publication when (and only if) the session's transaction commits."""
    stage_raw(session, event.subject, event.model_dump_json().encode(), str(event.event_id))


def stage_kv(session: Session, bucket: str, key: str, value: bytes, version: int, msg_id: str) -> None:
    """Queue a put of ``value`` on ``bucket``/``key`` at the key's ``version`` (from the caller's
    database, raised in the same transaction by every change of the key: ``shared.bus.kvput``)."""
    stage_raw(session, f"{KV_PREFIX}{bucket}.{key}", value, msg_id, headers={VERSION_HEADER: str(version)})


def stage_raw(
    session: Session, subject: str, payload: bytes, msg_id: str, headers: dict[str, str] | None = None
) -> None:
    """Queue a raw message with optional ``headers`` (KV puts: use :func:`stage_kv`)."""
    headers_json = json.dumps({**inject_headers(), **(headers or {})})
    handoff: list[Staged] | None = session.info.get(HANDOFF_KEY)
    if handoff is not None:
        # The session's owner inserts these (insert_handed) and hands them over once committed.
        handoff.append(Staged(msg_id, subject, payload, headers_json, datetime.now(UTC)))
        return
    session.add(OutboxMessage(msg_id=msg_id, subject=subject, payload=payload, headers=headers_json))
    relay = _RELAYS.get(id(session.get_bind()))
    if relay is not None:
        after_commit(session, relay.notify)


def handoff_session(session: Session) -> list[Staged]:
    """Collect what ``session`` stages from now on (a fresh list) instead of adding it: the owner
    inserts the rows with :func:`insert_handed` in the same transaction and hands them to the relay
    once committed."""
    staged: list[Staged] = []
    session.info[HANDOFF_KEY] = staged
    return staged


def insert_handed(session: Session, staged: list[Staged]) -> list[Pending]:
    """Insert collected rows in order (one executemany); returns them as the relay takes them."""
    if not staged:
        return []
    rows = [
        {"msg_id": m.msg_id, "subject": m.subject, "payload": m.payload, "headers": m.headers,
         "created_at": m.created_at, "attempts": 0}
        for m in staged
    ]  # fmt: skip
    session.execute(insert(_TABLE), rows)
    return [Pending(m.msg_id, m.subject, m.payload, m.headers) for m in staged]


def delete_published(session: Session, msg_ids: list[str]) -> None:
    """Delete acknowledged rows, by message id (a row's seq may be reused on SQLite)."""
    session.execute(delete(_TABLE).where(_TABLE.c.msg_id.in_(msg_ids)))


def pending_count(engine: Engine) -> int:
    """Messages committed but not yet acknowledged by JetStream (readiness and tests)."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OutboxMessage)).one())


class _Round:
    """The acknowledgements awaited for one round of messages."""

    def __init__(self, size: int) -> None:
        self.acked = [False] * size
        self.answered = [False] * size
        self.rejected = [False] * size  # answered with an explicit JetStream error
        self.left = size
        self.complete = asyncio.Event()
        self.changed = asyncio.Event()
        if size == 0:
            self.complete.set()


class OutboxRelay:
    """Publishes committed outbox rows to JetStream, then deletes them."""

    ack_timeout = ACK_TIMEOUT_S
    straggler_timeout = STRAGGLER_TIMEOUT_S
    # Seconds to wait before reading the table, so that a burst of commits goes out as one batch.
    linger = 0.0

    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        *,
        batch_size: int = 256,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        # Set by a group-commit writer on SQLite (module docstring); else the relay deletes itself.
        self.deleter: Callable[[list[str]], Awaitable[None]] | None = None
        self.parked = 0  # rows this relay moved to outbox_dead
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0
        self.fast_published = 0
        self.flushes = 0  # completed flush_once calls (tests probe it instead of sleeping)
        # Fast path state (event loop only).
        self._fast: list[Pending] = []
        self._dirty = True  # the table may hold rows the fast path has not been handed
        # Handed-over KV puts awaited by their writer: (msg ids not yet stored, future).
        self._awaited: list[tuple[set[str], asyncio.Future[None]]] = []
        self._deleting: set[str] = set()  # msg ids handed to the deleter, not yet deleted
        self._reply_nc: Any = None
        self._reply_sub: Any = None
        self._inbox = ""
        self._round_no = 0
        self._pending_rounds: dict[int, _Round] = {}

    def notify(self) -> None:
        """Another transaction committed outbox rows: read the table next (thread-safe)."""
        self._dirty = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def handoff(self, rows: Sequence[Pending]) -> asyncio.Future[None]:
        """Publish these just-committed rows now (event loop only; see the module docstring).
        Returns a future done once their KV puts are stored (or superseded by newer versions)."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        puts = {row.msg_id for row in rows if row.subject.startswith(KV_PREFIX)}
        if puts:
            self._awaited.append((puts, stored))
        else:
            stored.set_result(None)
        if rows:
            self._fast.extend(rows)
            self._wake.set()
        return stored

    def _settle(self, done: Sequence[Any]) -> None:
        """Tell the writers awaiting these (now stored) KV puts."""
        self._settle_ids({row.msg_id for row in done})

    def _settle_ids(self, ids: set[str]) -> None:
        if not self._awaited:
            return
        waiting = []
        for puts, stored in self._awaited:
            puts -= ids
            if not puts:
                if not stored.done():
                    stored.set_result(None)
            elif not stored.done():
                waiting.append((puts, stored))
        self._awaited = waiting

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _RELAYS[id(self.engine)] = self
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what is pending (briefly), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if _RELAYS.get(id(self.engine)) is self:
            del _RELAYS[id(self.engine)]
        if self._reply_sub is not None and self.bus.nc is self._reply_nc and self.bus.connected:
            try:
                await self._reply_sub.unsubscribe()
            except Exception:  # noqa: BLE001 - stopping regardless
                pass
        self._reply_nc = self._reply_sub = None

    async def _run(self) -> None:
        failures = 0
        await asyncio.to_thread(self._count_parked)
        while True:
            # Clear before looking: a commit that lands while we flush sets it again, so its
            # wake-up is never lost (clearing after an empty flush would lose it for a poll).
            self._wake.clear()
            try:
                sent = await self.flush_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep relaying whatever goes wrong
                failures += 1
                log.warning("outbox publish failed", extra={"error_type": type(exc).__name__, "attempt": failures})
                sent = 0
                await asyncio.sleep(retry_delay(failures, initial=0.2, cap=self.max_backoff))
            if self._stopping and sent == 0:
                return
            if sent == 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    self._dirty = True  # poll: rows another process (or a lost wake-up) left

    # --- database (worker threads) ----------------------------------------------------------------

    def _rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(_BATCH, {"n": self.batch_size}))
        return [r for r in rows if r.msg_id not in self._deleting] if self._deleting else rows

    def _delete(self, msg_ids: list[str]) -> None:
        with Session(self.engine) as session:
            delete_published(session, msg_ids)
            session.commit()

    def _count_attempt(self, msg_ids: list[str]) -> list[str]:
        """One more failed attempt for each row; parks those that have used them all."""
        with self.engine.begin() as conn:
            conn.execute(update(_TABLE).where(_TABLE.c.msg_id.in_(msg_ids)).values(attempts=_TABLE.c.attempts + 1))
        parked = parking.park_exhausted(self.engine, msg_ids, self.max_attempts, "NotAcknowledged")
        if parked:
            self.parked += len(parked)
            log.error("outbox rows parked", extra={"service": self.bus.service, "count": len(parked)})
            self._count_parked()
        return parked

    def _count_parked(self) -> None:
        try:
            parking.OUTBOX_PARKED.labels(self.bus.service).set(parking.parked_count(self.engine))
        except Exception as exc:  # noqa: BLE001 - a metric must not stop the relay
            log.warning("parked outbox count failed", extra={"error_type": type(exc).__name__})

    # --- publishing -------------------------------------------------------------------------------

    async def flush_once(self) -> int:
        """Publish one batch (handed-over rows, else the table's oldest); returns how many were acked."""
        try:
            return await self._flush_once()
        finally:
            self.flushes += 1

    async def _flush_once(self) -> int:
        if not self.bus.connected:
            raise ConnectionError("nats not connected")
        if self._fast and not self._dirty:
            rows: Sequence[Any] = self._fast
            self._fast = []
            sent = await self._publish(rows)
            self.fast_published += sent
            return sent
        # Everything handed over so far is committed, so the read below sees it (in order).
        self._dirty = False
        self._fast = []
        if self.linger and not self._stopping:
            await asyncio.sleep(self.linger)
        rows = await asyncio.to_thread(self._rows)
        if self._awaited:
            await self._settle_gone(rows)
        if not rows:
            return 0
        self._dirty = True  # read again: more may be waiting
        return await self._publish(rows)

    async def _settle_gone(self, rows: Sequence[Any]) -> None:
        """Awaited puts that this table read does not show may be gone: with replicas on one
        database, another replica's relay can publish rows between their commit and this read, and
        rows are deleted only once acknowledged. Those no longer in the table are settled (before,
        their writer waited for its timeout and answered 503 change-pending)."""
        shown = {row.msg_id for row in rows}
        unseen = {msg_id for puts, _ in self._awaited for msg_id in puts} - shown - self._deleting
        if unseen:
            present = await asyncio.to_thread(self._present, unseen)
            self._settle_ids(unseen - present)

    def _present(self, msg_ids: set[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(_PRESENT, {"ids": list(msg_ids)}).scalars())

    async def _publish(self, rows: Sequence[Any]) -> int:
        faults.point("outbox_before_publish")  # tests: die with these rows committed, unpublished
        puts = [row for row in rows if row.subject.startswith(KV_PREFIX)]
        events = [row for row in rows if not row.subject.startswith(KV_PREFIX)] if puts else rows
        done: list[Any] = []
        failed: list[str] = []
        rejected: list[str] = []
        if puts:
            outcomes = await put_all(self.bus, puts, self.ack_timeout)
            done += [row for row, outcome in zip(puts, outcomes, strict=True) if outcome == STORED]
            failed += [row.msg_id for row, outcome in zip(puts, outcomes, strict=True) if outcome != STORED]
            rejected += [row.msg_id for row, outcome in zip(puts, outcomes, strict=True) if outcome == REFUSED]
            self._settle(done)
        if events:
            pending = await self._publish_round(events)
            done += [row for row, ok in zip(events, pending.acked, strict=True) if ok]
            failed += [row.msg_id for row, ok in zip(events, pending.acked, strict=True) if not ok]
            rejected += [row.msg_id for row, no in zip(events, pending.rejected, strict=True) if no]
        if done:
            await self._discard(done)
            self.published += len(done)
            EVENTS_PUBLISHED.labels(self.bus.service).inc(sum(1 for row in done if counted_subject(row.subject)))
        if failed:
            self._dirty = True
            # Count against the rows only if the broker took others meanwhile (or refused these
            # explicitly): an outage of NATS or JetStream must not use up anyone's attempts.
            charged = failed if done else rejected
            parked = await asyncio.to_thread(self._count_attempt, charged) if charged else []
            if len(parked) < len(failed):
                raise ConnectionError(f"{len(failed) - len(parked)} outbox message(s) not acknowledged")
        return len(done)

    async def _discard(self, rows: Sequence[Any]) -> None:
        # By message id, not seq: SQLite reuses the seq of a deleted last row, and a row published
        # twice (a table read racing its hand-over, or another replica's relay) must not have its
        # second delete hit a newer row.
        ids = [row.msg_id for row in rows]
        if self.deleter is None:
            await asyncio.to_thread(self._delete, ids)
            return
        self._deleting.update(ids)

        def finished(task: asyncio.Future[None]) -> None:
            self._deleting.difference_update(ids)
            if task.cancelled() or task.exception() is not None:
                self._dirty = True  # not deleted: the table path publishes them again (same ids)

        asyncio.ensure_future(self.deleter(ids)).add_done_callback(finished)

    async def _publish_round(self, rows: Sequence[Any]) -> _Round:
        nc = self.bus.nc
        if nc is None:
            raise ConnectionError("nats not connected")
        if self._reply_nc is not nc:  # one inbox subscription for the relay's life (per connection)
            self._inbox = nc.new_inbox()
            self._reply_sub = await nc.subscribe(f"{self._inbox}.*.*", cb=self._on_reply)
            self._reply_nc = nc
        self._round_no += 1
        round_no = self._round_no  # a local: a concurrent flush (drain) may start another round
        pending = self._pending_rounds[round_no] = _Round(len(rows))
        prefix = f"{self._inbox}.{round_no}."
        try:
            for index, row in enumerate(rows):
                headers = json.loads(row.headers) if row.headers != "{}" else {}
                headers["Nats-Msg-Id"] = row.msg_id
                await nc.publish(row.subject, bytes(row.payload), reply=f"{prefix}{index}", headers=headers)
            await self._await_answers(pending)  # unanswered rows stay in the outbox
        finally:
            del self._pending_rounds[round_no]
        return pending

    async def _await_answers(self, pending: _Round) -> None:
        """Until every row is answered, ``ack_timeout`` passes, or (once some were answered)
        ``straggler_timeout`` passes without a new answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while not pending.complete.is_set():
            wait = deadline - loop.time()
            if pending.left < len(pending.acked):
                wait = min(wait, self.straggler_timeout)
            if wait <= 0:
                return
            pending.changed.clear()
            try:
                await asyncio.wait_for(pending.changed.wait(), wait)
            except TimeoutError:
                return

    async def _on_reply(self, msg: Msg) -> None:
        try:
            _, round_no, index = msg.subject.rsplit(".", 2)
            pending = self._pending_rounds.get(int(round_no))
            i = int(index)
        except ValueError:
            return
        if pending is not None and 0 <= i < len(pending.acked) and not pending.answered[i]:
            pending.answered[i] = True
            pending.acked[i] = acknowledged(msg)
            pending.rejected[i] = not pending.acked[i] and b'"error"' in (msg.data or b"")
            pending.left -= 1
            pending.changed.set()
            if pending.left == 0:
                pending.complete.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Publish everything pending now (tests and shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.flush_once():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("outbox did not drain")
