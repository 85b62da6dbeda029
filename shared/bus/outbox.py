"""Transactional outbox: events are rows written in the same transaction as the state change.

A rolled-back transaction therefore publishes nothing, and a committed one publishes at least
once; JetStream de-duplicates on ``Nats-Msg-Id`` (the event id), so consumers see it once.

The relay publishes pending rows in commit order, pipelined: a round of messages is written on the
one connection in outbox order (JetStream stores them in that order), each with its own reply
subject under one inbox subscription, and the acknowledgements are counted when they arrive
(~30 us of CPU a message instead of a round trip each). A round is cut at the first repeated KV
key and the next round starts only once the previous one is acknowledged, and a failed round
stops the batch: so a KV put that fails is never overtaken by a later put of the same key (the
consent KV bucket is last-write-wins per key). Events need no cut: each is self-contained and
de-duplicated by id, and consumers read current consent from the bucket.

Fast path. A writer that commits outbox rows itself (``handoff_session``; the consent service's
group-commit writer) hands the committed rows to the relay, which publishes them at once, with no
database read, and has them deleted through ``deleter`` (on SQLite the writer's own connection, so
deletes never queue on the write lock against requests). The rows stay in the table until then: a
crash or a failed publish leaves them to the table path. The fast path is taken only while the
table is known to hold nothing older: the relay reads the table first whenever another
transaction in this process committed outbox rows (``notify``), while one that staged a KV put is
still committing, at start-up, every ``poll_interval``, and after any failure.

A row that JetStream will not take is retried ``max_attempts`` times, then parked in
``outbox_dead`` (``shared/bus/parking.py``) so that it stops holding up the rest. A round whose
other messages are acknowledged waits at most ``straggler_timeout`` after the last answer for the
ones still silent (a publish the broker refuses for lack of permission is never answered).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import Column, LargeBinary, Table, delete, event, func, insert, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from shared.bus import parking
from shared.bus.connection import Bus
from shared.bus.failures import retry_delay
from shared.db import after_commit
from shared.events.base import Event
from shared.telemetry import EVENTS_PUBLISHED, inject_headers
from shared.telemetry import counted as counted_subject

log = logging.getLogger("kinwell.outbox")

KV_PREFIX = "$KV."
ACK_TIMEOUT_S = 10.0
STRAGGLER_TIMEOUT_S = 2.0
MAX_ATTEMPTS = 5
# A session whose owner hands its committed outbox rows to the relay itself keeps them here.
HANDOFF_KEY = "kinwell_outbox_handoff"
_FOREIGN_KEY = "kinwell_outbox_foreign_kv"
_COUNTED = "kinwell_outbox_foreign_kv_counted"
_BATCH = text("SELECT seq, msg_id, subject, payload, headers FROM outbox ORDER BY seq LIMIT :n")


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


def stage(session: Session, event: Event) -> None:
    """Queue ``event`` for publication when (and only if) the session's transaction commits."""
    stage_raw(session, event.subject, event.model_dump_json().encode(), str(event.event_id))


def stage_raw(session: Session, subject: str, payload: bytes, msg_id: str) -> None:
    """Queue a raw message (a KV put is a publish to ``$KV.<bucket>.<key>``)."""
    headers = json.dumps(inject_headers())
    handoff: list[Staged] | None = session.info.get(HANDOFF_KEY)
    if handoff is not None:
        # The session's owner inserts these (insert_handed) and hands them over once committed.
        handoff.append(Staged(msg_id, subject, payload, headers, datetime.now(UTC)))
        return
    session.add(OutboxMessage(msg_id=msg_id, subject=subject, payload=payload, headers=headers))
    relay = _RELAYS.get(id(session.get_bind()))
    if relay is not None:
        after_commit(session, relay.notify)
        if subject.startswith(KV_PREFIX):
            session.info[_FOREIGN_KEY] = relay


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


# A transaction that staged a KV put without handing it over counts as "committing" from just
# before its commit until just after it, so that a fast-path put of the same key, which can only
# commit after it, is not published before it (the relay reads the table instead).
@event.listens_for(Session, "before_commit")
def _foreign_committing(session: Session) -> None:
    relay = session.info.get(_FOREIGN_KEY)
    if relay is not None and _COUNTED not in session.info:
        session.info[_COUNTED] = relay
        relay._foreign_begin()


@event.listens_for(Session, "after_transaction_end")
def _foreign_done(session: Session, transaction: Any) -> None:
    # Every way a transaction ends (commit, rollback, a failed commit, close) passes here.
    if transaction.parent is None and (relay := session.info.pop(_COUNTED, None)) is not None:
        session.info.pop(_FOREIGN_KEY, None)
        relay._foreign_end()


def pending_count(engine: Engine) -> int:
    """Messages committed but not yet acknowledged by JetStream (readiness and tests)."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OutboxMessage)).one())


def acknowledged(msg: Msg) -> bool:
    """A JetStream publish ack: JSON without "error"; a status reply (no stream) is not one."""
    if msg.headers and msg.headers.get("Status"):
        return False
    return bool(msg.data) and b'"error"' not in msg.data


def _rounds(rows: Sequence[Any]) -> list[Sequence[Any]]:
    """Split ``rows`` (outbox order) so that no round holds two puts of one KV key."""
    rounds: list[Sequence[Any]] = []
    start, seen = 0, set[str]()
    for i, row in enumerate(rows):
        if row.subject.startswith(KV_PREFIX):
            if row.subject in seen:
                rounds.append(rows[start:i])
                start, seen = i, set[str]()
            seen.add(row.subject)
    rounds.append(rows[start:])
    return rounds


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
        deleter: Callable[[list[str]], Awaitable[None]] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.deleter = deleter
        self.max_attempts = max_attempts
        self.parked = 0  # rows this relay moved to outbox_dead
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0
        self.fast_published = 0
        self.flushes = 0  # completed flush_once calls (tests probe it instead of sleeping)
        # Fast path state (event loop only, except the counter of foreign KV commits).
        self._fast: list[Pending] = []
        self._dirty = True  # the table may hold rows the fast path has not been handed
        self._foreign = 0
        self._foreign_lock = threading.Lock()
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

    def handoff(self, rows: Sequence[Pending]) -> None:
        """Publish these just-committed rows now (event loop only; see the module docstring)."""
        if rows:
            self._fast.extend(rows)
            self._wake.set()

    def _foreign_begin(self) -> None:
        with self._foreign_lock:
            self._foreign += 1

    def _foreign_end(self) -> None:
        with self._foreign_lock:
            self._foreign -= 1
        self.notify()

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
        with self.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.msg_id.in_(msg_ids)))

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
        if self._fast and not self._dirty and self._foreign == 0:
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
        if not rows:
            return 0
        self._dirty = True  # read again: more may be waiting
        return await self._publish(rows)

    async def _publish(self, rows: Sequence[Any]) -> int:
        done: list[Any] = []
        failed: list[str] = []
        rejected: list[str] = []
        for batch in _rounds(rows):
            pending = await self._publish_round(batch)
            done += [row for row, ok in zip(batch, pending.acked, strict=True) if ok]
            failed += [row.msg_id for row, ok in zip(batch, pending.acked, strict=True) if not ok]
            rejected += [row.msg_id for row, no in zip(batch, pending.rejected, strict=True) if no]
            if failed:
                break  # later rounds wait: one may hold a newer put of a key that failed here
        if done:
            await self._discard(done)
            self.published += len(done)
            EVENTS_PUBLISHED.labels(self.bus.service).inc(sum(1 for row in done if counted_subject(row.subject)))
        if failed:
            self._dirty = True
            # Count against the rows only if the broker took others meanwhile (or refused these
            # explicitly): an outage of NATS or JetStream must not use up anyone's attempts.
            counted = failed if done else rejected
            parked = await asyncio.to_thread(self._count_attempt, counted) if counted else []
            if len(parked) < len(failed):
                raise ConnectionError(f"{len(failed) - len(parked)} outbox message(s) not acknowledged")
        return len(done)

    async def _discard(self, rows: Sequence[Any]) -> None:
        # By message id, not seq: SQLite reuses the seq of a deleted last row, and a row published
        # twice (a table read racing its delayed delete) must not have its second delete hit a
        # newer row.
        ids = [row.msg_id for row in rows]
        if self.deleter is None:
            await asyncio.to_thread(self._delete, ids)
            return
        # Deleted by the writer when it next commits; until then a table read skips them.
        self._deleting.update(ids)

        def finished(task: asyncio.Future[None]) -> None:
            self._deleting.difference_update(ids)
            if not task.cancelled() and task.exception() is not None:
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
        pending = self._pending_rounds[self._round_no] = _Round(len(rows))
        prefix = f"{self._inbox}.{self._round_no}."
        try:
            for index, row in enumerate(rows):
                headers = json.loads(row.headers) if row.headers != "{}" else {}
                headers["Nats-Msg-Id"] = row.msg_id
                await nc.publish(row.subject, bytes(row.payload), reply=f"{prefix}{index}", headers=headers)
            await self._await_answers(pending)  # unanswered rows stay in the outbox
        finally:
            del self._pending_rounds[self._round_no]
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
