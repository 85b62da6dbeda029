"""Durable pull consumers with explicit ack, bounded redelivery, dead letters and idempotency.

For each message: validate it into its contract, then in one database transaction check the
idempotency record, run the handler (the same service function HTTP uses) and insert the record,
commit, and only then ack. A crash after the commit and before the ack leads to a redelivery that
finds the record and is acked without a second effect.

* Contract violation: dead-lettered at once and terminated (redelivering cannot fix it).
* Handler error: ``nak`` with a growing delay; on the last allowed delivery, dead-lettered and
  terminated. The dead letter carries the original bytes to ``<service>.dlq.<subject>`` in the
  service's own stream, with the error type (never its message) in a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from shared.bus.connection import Bus
from shared.telemetry import EVENTS_CONSUMED, span_from_headers

log = logging.getLogger("kinwell.consumer")

Handler = Callable[[Session, Any], None]
DEFAULT_BACKOFF: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0, 60.0)


class ProcessedEvent(SQLModel, table=True):
    """Idempotency record: this consumer has applied this event."""

    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True, max_length=120)
    event_id: str = Field(primary_key=True, max_length=100)
    processed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


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
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        batch: int = 64,
        fetch_timeout: float = 1.0,
    ) -> None:
        self.bus = bus
        self.engine = engine
        self.stream = stream
        self.name = name
        self.filter_subject = filter_subject
        self.adapter = adapter
        self.handler = handler
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.backoff = tuple(backoff)
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._fetching = False
        self._sub: Any = None
        self.ready = False
        self.applied = 0
        self.dead_lettered = 0

    async def _subscribe(self) -> Any:
        config = ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
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
                self._fetching = True
                try:
                    msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
                except (NatsTimeoutError, TimeoutError):
                    continue
                finally:
                    self._fetching = False
                for msg in msgs:
                    await self.process(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - stream missing, disconnected: retry
                self.ready = sub is not None
                log.warning("consumer loop error", extra={"consumer": self.name, "error_type": type(exc).__name__})
                await asyncio.sleep(1.0)

    async def process(self, msg: Msg) -> None:
        """Handle one delivery: validate, apply once, then ack / nak / dead-letter."""
        with span_from_headers(f"consume {msg.subject}", msg.headers, subject=msg.subject, consumer=self.name):
            try:
                event = self.adapter.validate_json(msg.data)
            except ValidationError:
                await self._dead_letter(msg, "ContractViolation")
                return
            try:
                await asyncio.to_thread(self._apply, event)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                delivered = msg.metadata.num_delivered
                if delivered >= self.max_deliver:
                    await self._dead_letter(msg, type(exc).__name__)
                else:
                    delay = self.backoff[min(delivered - 1, len(self.backoff) - 1)]
                    log.warning(
                        "handler failed; will retry",
                        extra={"consumer": self.name, "error_type": type(exc).__name__, "attempt": delivered},
                    )
                    EVENTS_CONSUMED.labels(self.bus.service, self.name, "retry").inc()
                    await msg.nak(delay=delay)
                return
            await self._ack(msg)

    def _apply(self, event: Any) -> None:
        event_id = str(event.event_id)
        with Session(self.engine, expire_on_commit=False) as session:
            if session.get(ProcessedEvent, (self.name, event_id)) is not None:
                EVENTS_CONSUMED.labels(self.bus.service, self.name, "duplicate").inc()
                return
            try:
                self.handler(session, event)
                session.add(ProcessedEvent(consumer=self.name, event_id=event_id))
                session.commit()
            except BaseException:
                session.rollback()
                raise
        self.applied += 1
        EVENTS_CONSUMED.labels(self.bus.service, self.name, "applied").inc()

    async def _ack(self, msg: Msg) -> None:
        await msg.ack()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        from shared.topology import dlq_subject

        headers = {
            "Kinwell-Dlq-Reason": reason,
            "Kinwell-Dlq-Consumer": self.name,
            "Kinwell-Dlq-Deliveries": str(msg.metadata.num_delivered),
            "Nats-Msg-Id": f"dlq:{self.name}:{msg.metadata.sequence.stream}",
        }
        await self.bus.js.publish(dlq_subject(self.bus.service, msg.subject), msg.data, headers=headers)
        await msg.term()
        self.dead_lettered += 1
        EVENTS_CONSUMED.labels(self.bus.service, self.name, "dead_letter").inc()
        log.error("dead-lettered", extra={"consumer": self.name, "subject": msg.subject, "error_type": reason})
