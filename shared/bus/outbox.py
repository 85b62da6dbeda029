"""Transactional outbox: events are rows written in the same transaction as the state change.

A rolled-back transaction therefore publishes nothing, and a committed one publishes at least
once; JetStream de-duplicates on ``Nats-Msg-Id`` (the event id), so consumers see it once.

The relay publishes pending rows in commit order, many at a time, but never two rows for the same
subject in one concurrent batch: a batch is cut at the first repeated subject and the next batch
starts only once the previous one is acknowledged. Per-subject order therefore holds, which the
consent KV bucket (last write wins per key) depends on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, LargeBinary, Table, delete, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from shared.bus.connection import Bus
from shared.db import after_commit
from shared.events.base import Event
from shared.telemetry import EVENTS_PUBLISHED, inject_headers

log = logging.getLogger("kinwell.outbox")


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


_TABLE: Table = OutboxMessage.__table__  # type: ignore[attr-defined]

# One relay per engine in a process; staging wakes it after commit.
_RELAYS: dict[int, OutboxRelay] = {}


def stage(session: Session, event: Event) -> None:
    """Queue ``event`` for publication when (and only if) the session's transaction commits."""
    stage_raw(session, event.subject, event.model_dump_json().encode(), str(event.event_id))


def stage_raw(session: Session, subject: str, payload: bytes, msg_id: str) -> None:
    """Queue a raw message (a KV put is a publish to ``$KV.<bucket>.<key>``)."""
    session.add(OutboxMessage(msg_id=msg_id, subject=subject, payload=payload, headers=json.dumps(inject_headers())))
    relay = _RELAYS.get(id(session.get_bind()))
    if relay is not None:
        after_commit(session, relay.notify)


def pending_count(engine: Engine) -> int:
    """Messages committed but not yet acknowledged by JetStream (readiness and tests)."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OutboxMessage)).one())


class OutboxRelay:
    """Publishes committed outbox rows to JetStream, then deletes them."""

    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        *,
        batch_size: int = 256,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0

    def notify(self) -> None:
        """Wake the relay (thread-safe: called from commit hooks in worker threads)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

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
        _RELAYS.pop(id(self.engine), None)

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            # Clear before looking: a commit that lands while we flush sets it again, so its
            # wake-up is never lost (clearing after an empty flush would lose it for a poll).
            self._wake.clear()
            try:
                sent = await self.flush_once()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - keep relaying whatever goes wrong
                backoff = min(self.max_backoff, max(0.2, backoff * 2))
                log.warning("outbox publish failed", extra={"error_type": type(exc).__name__, "attempt": backoff})
                sent = 0
                await asyncio.sleep(backoff)
            if self._stopping and sent == 0:
                return
            if sent == 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
                except TimeoutError:
                    pass

    def _next_batch(self) -> list[Any]:
        t = _TABLE
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa_select(t.c.seq, t.c.msg_id, t.c.subject, t.c.payload, t.c.headers)
                .order_by(t.c.seq)
                .limit(self.batch_size)
            ).all()
        # Messages go out concurrently, so a failed one could be retried after a later one of the
        # same KV key and overwrite it: cut the batch at the first repeated KV key. Events need no
        # cut: one connection writes them in order, and consumers read current state from the KV.
        batch: list[Any] = []
        seen: set[str] = set()
        for row in rows:
            if row.subject.startswith("$KV."):
                if row.subject in seen:
                    break
                seen.add(row.subject)
            batch.append(row)
        return batch

    def _delete(self, seqs: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.seq.in_(seqs)))

    def _count_attempt(self, seqs: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_TABLE).where(_TABLE.c.seq.in_(seqs)).values(attempts=_TABLE.c.attempts + 1))

    async def flush_once(self) -> int:
        """Publish one batch; returns how many messages JetStream acknowledged."""
        if not self.bus.connected:
            raise ConnectionError("nats not connected")
        batch = await asyncio.to_thread(self._next_batch)
        if not batch:
            return 0
        results = await asyncio.gather(
            *(self.bus.publish(r.subject, r.payload, r.msg_id, json.loads(r.headers)) for r in batch),
            return_exceptions=True,
        )
        done = [r.seq for r, res in zip(batch, results, strict=True) if not isinstance(res, BaseException)]
        failed = [r.seq for r, res in zip(batch, results, strict=True) if isinstance(res, BaseException)]
        if done:
            await asyncio.to_thread(self._delete, [s for s in done if s is not None])
            self.published += len(done)
            EVENTS_PUBLISHED.labels(self.bus.service).inc(len(done))
        if failed:
            await asyncio.to_thread(self._count_attempt, [s for s in failed if s is not None])
            first = next(res for res in results if isinstance(res, BaseException))
            raise first if isinstance(first, Exception) else RuntimeError("publish failed")
        return len(done)

    async def drain(self, timeout: float = 10.0) -> None:
        """Publish everything pending now (tests and shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.flush_once():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("outbox did not drain")
