"""Durable pull consumers with explicit ack, classified retries, dead letters and idempotency.

For each fetched batch: validate each message into its contract, then in one database transaction
check the batch's idempotency records, run the handler (the same service function HTTP uses) on
each new event in stream order and insert its record, commit once, and only then ack each
message. A crash after the commit and before the acks leads to redeliveries that find the records
and are acked without a second effect. The handler cannot tell: it gets a session and an event,
as with one message per transaction.

If anything in the batch fails (a handler raises, ``NotYet`` included, or the commit does),
nothing of it is kept and the batch is applied again one message per transaction: the message
that fails is classified alone, and its batch-mates are applied and acked as if it were not there.

A failure is classified (``shared.bus.failures``): an event that cannot be judged yet (consent
unknown) is redelivered after a short delay, uncounted; an infrastructure failure (database or
NATS unavailable) is retried with capped backoff for as long as it lasts, never dead-lettered; a
contract violation or domain error is dead-lettered at once; anything else after
``max_deliver`` counted attempts. The server is configured with ``max_deliver=-1``, so only this
code ends a message, and only after its dead letter is stored: if that publish fails, the message
is not acknowledged and comes back. The dead letter carries the original bytes to
``<service>.dlq.<subject>`` in the service's own stream, with the error type (never its message)
in a header.

A consumer whose handler is wrapped in ``shared.events.checkin.gated`` waits for that gate to be
synced before it fetches (at start-up and after every reconnect), so it does not churn through
deliveries it would only have to put back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from shared import faults
from shared.bus.connection import Bus
from shared.bus.failures import classify, retry_delay
from shared.consent_gate import ConsentGate
from shared.telemetry import DEAD_LETTERS, EVENTS_CONSUMED, counted, span_from_headers

log = logging.getLogger("kinwell.consumer")

Handler = Callable[[Session, Any], None]
NOT_YET_DELAY_S = 1.0  # consent unknown: look again soon (the gate is usually synced within seconds)
RETRY_INITIAL_S = 0.5
RETRY_CAP_S = 60.0  # infrastructure retries: at most a minute apart, for as long as it takes
_TRACKED = 10_000  # bound on the per-message attempt counts kept in memory


class ProcessedEvent(SQLModel, table=True):
    """Idempotency record: this consumer has applied this event."""

    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True, max_length=120)
    event_id: str = Field(primary_key=True, max_length=100)
    processed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


_PROCESSED = ProcessedEvent.__table__  # type: ignore[attr-defined]
# Which of a batch's events this consumer has applied: one Core statement, built once.
_SEEN = select(_PROCESSED.c.event_id).where(
    _PROCESSED.c.consumer == bindparam("c"), _PROCESSED.c.event_id.in_(bindparam("ids", expanding=True))
)
# The records of a batch, stamped by the database's clock: a datetime bound per row cost two type
# conversions a record (nothing reads the time back; it is for an operator).
_RECORD = insert(_PROCESSED).values(processed_at=func.now())


class Consumer:
    """One durable pull consumer (``name`` on ``stream``, filtered to ``filter_subject``)."""

    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        *,
        stream: str,
        name: str,
        filter_subject: str,
        adapter: TypeAdapter[Any],
        handler: Handler,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        retry_initial: float = RETRY_INITIAL_S,
        retry_cap: float = RETRY_CAP_S,
        not_yet_delay: float = NOT_YET_DELAY_S,
        batch: int = 64,
        fetch_timeout: float = 1.0,
        gate: ConsentGate | None = None,
    ) -> None:
        self.bus = bus
        self.engine = engine
        self.stream = stream
        self.name = name
        self.filter_subject = filter_subject
        self.adapter = adapter
        self.handler = handler
        # Attempts an *unexpected* failure gets before its dead letter (counted here, not by the
        # server: its delivery count also includes uncounted not-yet and infrastructure retries).
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.retry_initial = retry_initial
        self.retry_cap = retry_cap
        self.not_yet_delay = not_yet_delay
        # The consent gate the handler consults (set by ``gated``): wait for it to be synced.
        self.gate: ConsentGate | None = gate if gate is not None else getattr(handler, "consent_gate", None)
        self._failures: dict[int, int] = {}  # stream sequence -> unexpected failures seen
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._fetching = False
        self._sub: Any = None
        self.ready = False
        self.applied = 0
        self.dead_lettered = 0
        self.retried = 0  # infrastructure and unexpected failures put back
        self.not_yet = 0  # deliveries put back because the event could not be judged yet

    async def _subscribe(self) -> Any:
        config = ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # only this code ends a message (after its dead letter is stored)
            max_ack_pending=max(self.batch * 4, 256),
        )
        await self.bus.js.add_consumer(self.stream, config)
        return await self.bus.js.pull_subscribe_bind(self.name, self.stream)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        """Stop at once when idle in a fetch; otherwise let the batch in hand finish (bounded).

        A message cancelled mid-fetch was never acknowledged, so JetStream redelivers it after
        ``ack_wait`` and the idempotency record keeps that from applying twice.
        """
        self._stopping.set()
        task = self._task
        if task is None or task.done():
            return
        if self._fetching:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.fetch_timeout + 5)
        if not done:
            task.cancel()
        if self._sub is not None:
            # Without interest in its inbox, the server drops the pull request the cancelled fetch
            # left pending, instead of delivering into it and holding messages for ``ack_wait``.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _run(self) -> None:
        sub = None
        while not self._stopping.is_set():
            try:
                if sub is None:
                    sub = self._sub = await self._subscribe()
                    self.ready = True
                if self.gate is not None and not self.gate.synced:
                    await self._wait_for_gate(self.gate)
                    continue
                self._fetching = True
                try:
                    msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
                except (NatsTimeoutError, TimeoutError):
                    continue
                finally:
                    self._fetching = False
                await self.process_batch(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - stream missing, disconnected: retry
                self.ready = sub is not None
                log.warning("consumer loop error", extra={"consumer": self.name, "error_type": type(exc).__name__})
                await asyncio.sleep(1.0)

    async def _wait_for_gate(self, gate: ConsentGate) -> None:
        """Until the gate is synced (or we are stopping): fetching now would only put back."""
        self._fetching = True  # stop() may cancel this wait at once
        try:
            await asyncio.wait_for(gate.wait_synced(), timeout=self.fetch_timeout)
        except TimeoutError:
            pass
        finally:
            self._fetching = False

    async def process(self, msg: Msg) -> None:
        """Handle one delivery: validate, apply once, then ack / put back / dead-letter."""
        await self.process_batch([msg])

    async def process_batch(self, msgs: list[Msg]) -> None:
        """Handle a fetched batch: one transaction for all of it, acks after its commit; if any of
        it fails, nothing is kept and each message is handled in a transaction of its own."""
        valid: list[tuple[Msg, Any]] = []
        for msg in msgs:
            try:
                valid.append((msg, self.adapter.validate_json(msg.data)))
            except ValidationError:
                await self._dead_letter(msg, "ContractViolation")
        if len(valid) > 1:
            try:
                await self._apply_in_progress(valid)
            except Exception:  # noqa: BLE001 - nothing kept: each one alone tells which failed
                pass
            else:
                for msg, _ in valid:  # each message's span continues its producer's trace
                    with span_from_headers(
                        f"consume {msg.subject}", msg.headers, subject=msg.subject, consumer=self.name, batch=len(valid)
                    ):
                        await self._applied(msg)
                return
        for msg, event in valid:
            with span_from_headers(f"consume {msg.subject}", msg.headers, subject=msg.subject, consumer=self.name):
                try:
                    await self._apply_in_progress([(msg, event)])
                except Exception as exc:  # noqa: BLE001 - classified below
                    await self._failed(msg, exc)
                    continue
                await self._applied(msg)

    async def _applied(self, msg: Msg) -> None:
        if self._failures:  # (parsing a message's metadata costs more than validating it)
            self._failures.pop(msg.metadata.sequence.stream, None)
        faults.point("consumer_before_ack")  # tests: die with the effect committed, unacked
        await self._ack(msg)

    async def _apply_in_progress(self, batch: list[tuple[Msg, Any]]) -> None:
        """Apply in a worker thread, telling the server we are still at it (a handler waiting on a
        locked database must not have its messages handed out again meanwhile)."""
        work = asyncio.ensure_future(asyncio.to_thread(self._apply, [event for _, event in batch]))
        while True:
            done, _ = await asyncio.wait({work}, timeout=max(self.ack_wait / 3, 0.1))
            if done:
                return work.result()
            for msg, _ in batch:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _failed(self, msg: Msg, exc: Exception) -> None:
        kind = classify(exc)
        error_type = type(exc).__name__
        seq = msg.metadata.sequence.stream
        if kind == "not_yet":
            self.not_yet += 1
            EVENTS_CONSUMED.labels(self.bus.service, self.name, "not_yet").inc()
            await msg.nak(delay=self.not_yet_delay)
            return
        if kind == "deterministic":
            await self._dead_letter(msg, error_type)
            return
        if kind == "unexpected":
            failures = self._failures[seq] = self._failures.pop(seq, 0) + 1
            while len(self._failures) > _TRACKED:
                del self._failures[next(iter(self._failures))]
            if failures >= self.max_deliver:
                await self._dead_letter(msg, error_type)
                return
        self.retried += 1
        attempt = msg.metadata.num_delivered or 1
        log.warning(
            "handler failed; will retry",
            extra={"consumer": self.name, "error_type": error_type, "outcome": kind, "attempt": attempt},
        )
        EVENTS_CONSUMED.labels(self.bus.service, self.name, "retry").inc()
        await msg.nak(delay=retry_delay(attempt, initial=self.retry_initial, cap=self.retry_cap))

    def _apply(self, events: list[Any]) -> None:
        """One transaction: each event not yet recorded goes to the handler, in order, with its
        idempotency record; a repeat (recorded before, or earlier in the same list) is skipped."""
        ids = [str(event.event_id) for event in events]
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                seen = set(session.connection().execute(_SEEN, {"c": self.name, "ids": ids}).scalars())
                records: list[dict[str, Any]] = []
                for event, event_id in zip(events, ids, strict=True):
                    if event_id in seen:
                        continue
                    seen.add(event_id)
                    self.handler(session, event)
                    records.append({"consumer": self.name, "event_id": event_id})
                if records:  # one executemany: an ORM object per record cost more than most handlers
                    session.connection().execute(_RECORD, records)
                session.commit()
                applied = len(records)
            except BaseException:
                session.rollback()
                raise
        self.applied += applied
        if counted(self.filter_subject):  # failures (retry, dead letter) are always counted
            if applied:
                EVENTS_CONSUMED.labels(self.bus.service, self.name, "applied").inc(applied)
            if len(events) > applied:
                EVENTS_CONSUMED.labels(self.bus.service, self.name, "duplicate").inc(len(events) - applied)

    async def _ack(self, msg: Msg) -> None:
        await msg.ack()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        """Store the message under the dead-letter subject, then end it; if the store fails, the
        message is put back (redelivered), never ended."""
        from shared.topology import dlq_subject

        headers = {
            "Kinwell-Dlq-Reason": reason,
            "Kinwell-Dlq-Consumer": self.name,
            "Kinwell-Dlq-Deliveries": str(msg.metadata.num_delivered),
            "Kinwell-Dlq-Stream-Seq": str(msg.metadata.sequence.stream),
            "Nats-Msg-Id": f"dlq:{self.name}:{msg.metadata.sequence.stream}",
        }
        try:
            await self.bus.js.publish(dlq_subject(self.bus.service, msg.subject), msg.data, headers=headers)
        except Exception as exc:  # noqa: BLE001 - not stored: the message must come back
            log.warning(
                "dead-letter publish failed; will retry",
                extra={"consumer": self.name, "error_type": type(exc).__name__},
            )
            self.retried += 1
            EVENTS_CONSUMED.labels(self.bus.service, self.name, "retry").inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=retry_delay(msg.metadata.num_delivered or 1, cap=self.retry_cap))
            return
        await msg.term()
        self._failures.pop(msg.metadata.sequence.stream, None)
        self.dead_lettered += 1
        EVENTS_CONSUMED.labels(self.bus.service, self.name, "dead_letter").inc()
        DEAD_LETTERS.labels(self.bus.service, self.name, reason).inc()
        log.error("dead-lettered", extra={"consumer": self.name, "subject": msg.subject, "error_type": reason})
