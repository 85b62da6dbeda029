"""The outbox, the relay and durable consumers against a real nats-server and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Literal

from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import TypeAdapter
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel, func, select

from shared.bus import Bus, Consumer, OutboxRelay, stage
from shared.bus.failures import NotYet
from shared.bus.outbox import OutboxMessage, pending_count
from shared.db import make_engine, run_migrations
from shared.errors import Conflict
from shared.events.base import Event

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"


class Ping(Event):
    type: Literal["bustest.ping.v1"] = "bustest.ping.v1"
    subject_template = "bustest.ping.v1"
    n: int


class BusEffect(SQLModel, table=True):
    __tablename__ = "bus_effect"
    id: int | None = Field(default=None, primary_key=True)
    n: int


PING = TypeAdapter(Ping)


def _engine(url: str):
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    BusEffect.__table__.create(engine)  # type: ignore[attr-defined]
    return engine


async def _bus(nats_server, stream: str) -> Bus:
    kw = nats_server.connect_kwargs("ops")
    bus = Bus(
        "bustest", kw["servers"][0] if isinstance(kw["servers"], list) else kw["servers"], kw["user"], kw["password"]
    )
    await bus.connect()
    try:
        await bus.js.delete_stream(stream)
    except Exception:
        pass
    await bus.ensure_stream(stream, ["bustest.>"])
    return bus


def _effects(engine) -> list[int]:
    with Session(engine) as s:
        return [e.n for e in s.exec(select(BusEffect))]


def _record(session: Session, event: Ping) -> None:
    session.add(BusEffect(n=event.n))


async def _stream_count(bus: Bus, stream: str, subject: str = "bustest.ping.v1") -> int:
    info = await bus.js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


def _consumer(bus, engine, handler=_record, **kw) -> Consumer:
    return Consumer(
        bus,
        engine,
        stream="BUSTEST",
        name=kw.pop("name", "bustest_ping"),
        filter_subject="bustest.ping.>",
        adapter=PING,
        handler=handler,
        fetch_timeout=0.2,
        **kw,
    )


async def _waiting_pull(bus: Bus, name: str, timeout: float = 10.0) -> None:
    """Until the server holds a pull request of consumer ``name`` (a fetch is parked)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await bus.js.consumer_info("BUSTEST", name)).num_waiting < 1:
        assert asyncio.get_running_loop().time() < deadline, "no pull request parked"
        await asyncio.sleep(0.02)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_committed_event_is_delivered_once(nats_server, db_url):
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        relay = OutboxRelay(engine, bus, poll_interval=0.1)
        relay.start()
        with Session(engine) as s:
            s.add(BusEffect(n=-1))  # the state change the event reports
            stage(s, Ping(n=1))
            s.commit()
        await _until(lambda: relay.published == 1)
        consumer = _consumer(bus, engine)
        consumer.start()
        await _until(lambda: consumer.applied == 1)
        # The server's own count: one delivery, acknowledged, nothing pending or in redelivery.
        info = await bus.js.consumer_info("BUSTEST", "bustest_ping")
        assert info.delivered.consumer_seq == 1 and info.num_ack_pending == 0 and info.num_redelivered == 0
        assert info.num_pending == 0
        await consumer.stop()
        await relay.stop()
        assert await _stream_count(bus, "BUSTEST") == 1
        await bus.close()

    asyncio.run(body())
    assert sorted(_effects(engine)) == [-1, 1]
    assert pending_count(engine) == 0


def test_rolled_back_change_publishes_nothing(nats_server, db_url):
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        relay = OutboxRelay(engine, bus, poll_interval=0.1)
        with Session(engine) as s:
            s.add(BusEffect(n=-1))
            stage(s, Ping(n=2))
            s.rollback()
        assert pending_count(engine) == 0
        assert await relay.flush_once() == 0
        assert await _stream_count(bus, "BUSTEST") == 0
        await bus.close()

    asyncio.run(body())
    assert _effects(engine) == []


def test_duplicate_publish_is_deduplicated(nats_server, db_url):
    """A relay that dies after JetStream's ack but before deleting the row publishes it again."""
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        relay = OutboxRelay(engine, bus)
        event = Ping(n=3)
        with Session(engine) as s:
            stage(s, event)
            s.commit()
        assert await relay.flush_once() == 1
        with Session(engine) as s:  # the same row again, as if the delete never happened
            stage(s, event)
            s.commit()
        assert await relay.flush_once() == 1
        await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        assert await _stream_count(bus, "BUSTEST") == 1
        await bus.close()

    asyncio.run(body())


def test_consumer_killed_before_ack_is_redelivered_with_one_effect(nats_server, db_url):
    engine = _engine(db_url)

    class DiesBeforeAck(Consumer):
        async def _ack(self, msg):  # the process "dies" between commit and ack
            self._stopping.set()

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        event = Ping(n=4)
        await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        first = DiesBeforeAck(
            bus,
            engine,
            stream="BUSTEST",
            name="bustest_kill",
            filter_subject="bustest.ping.>",
            adapter=PING,
            handler=_record,
            fetch_timeout=0.2,
            ack_wait=1.0,
        )
        first.start()
        await _until(lambda: first.applied == 1)
        await first.stop()
        second = _consumer(bus, engine, name="bustest_kill", ack_wait=1.0)
        second.start()
        # Redelivered after ack_wait: recognised by its idempotency record and acked.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            info = await bus.js.consumer_info("BUSTEST", "bustest_kill")
            if info.num_ack_pending == 0 and info.delivered.consumer_seq >= 2:
                break
            assert asyncio.get_running_loop().time() < deadline, "no redelivery"
            await asyncio.sleep(0.1)
        await second.stop()
        assert second.applied == 0  # the redelivery found the record: no second effect
        await bus.close()

    asyncio.run(body())
    assert _effects(engine) == [4]


def test_idle_consumer_stops_without_waiting_out_its_fetch(nats_server, db_url):
    """Shutdown does not wait for a long pull to expire, and what arrives afterwards is not lost."""
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        consumer = Consumer(
            bus,
            engine,
            stream="BUSTEST",
            name="bustest_idle",
            filter_subject="bustest.ping.>",
            adapter=PING,
            handler=_record,
            fetch_timeout=60.0,
        )
        consumer.start()
        await _until(lambda: consumer.ready)
        await _waiting_pull(bus, "bustest_idle")  # parked in its 60 s fetch
        loop = asyncio.get_running_loop()
        started = loop.time()
        await consumer.stop()
        assert loop.time() - started < 30  # far less than the fetch it was parked in
        assert consumer._task is not None and consumer._task.done()
        event = Ping(n=7)
        await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        again = _consumer(bus, engine, name="bustest_idle")
        again.start()
        await _until(lambda: again.applied == 1)
        await again.stop()
        await bus.close()

    asyncio.run(body())
    assert _effects(engine) == [7]


def test_poison_message_is_dead_lettered_after_bounded_redeliveries(nats_server, db_url):
    engine = _engine(db_url)
    attempts: list[int] = []

    def always_fails(session: Session, event: Ping) -> None:
        attempts.append(event.n)
        raise RuntimeError("cannot apply")

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        event = Ping(n=5)
        await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        # A message that violates the contract goes to the dead letters at once.
        await bus.publish("bustest.ping.v1", b'{"type": "bustest.ping.v1", "n": "not a number"}', "bad-1")
        consumer = _consumer(bus, engine, handler=always_fails, max_deliver=3, retry_initial=0.05, retry_cap=0.1)
        consumer.start()
        await _until(lambda: consumer.dead_lettered == 2)
        await consumer.stop()
        dlq = await bus.js.pull_subscribe("bustest.dlq.>", stream="BUSTEST", config=ConsumerConfig(name="dlq_reader"))
        msgs = await dlq.fetch(2, timeout=5)
        reasons = sorted(m.headers["Kinwell-Dlq-Reason"] for m in msgs)
        assert reasons == ["ContractViolation", "RuntimeError"]
        poison = next(m for m in msgs if m.headers["Kinwell-Dlq-Reason"] == "RuntimeError")
        assert poison.subject == "bustest.dlq.bustest.ping.v1"
        assert poison.headers["Kinwell-Dlq-Deliveries"] == "3"
        assert Ping.model_validate_json(poison.data) == event
        await bus.close()

    asyncio.run(body())
    assert attempts == [5, 5, 5]
    assert _effects(engine) == []


def test_relay_keeps_per_subject_order(nats_server, db_url):
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        relay = OutboxRelay(engine, bus, batch_size=50)
        with Session(engine) as s:
            for i in range(120):
                stage(s, Ping(n=i))
            s.commit()
        await relay.drain()
        sub = await bus.js.pull_subscribe("bustest.ping.>", stream="BUSTEST", config=ConsumerConfig(name="order"))
        seen: list[int] = []
        while len(seen) < 120:
            for m in await sub.fetch(120, timeout=5):
                seen.append(Ping.model_validate_json(m.data).n)
                await m.ack()
        assert seen == list(range(120))
        await bus.close()

    asyncio.run(body())
    with Session(make_engine(db_url)) as s:
        assert s.exec(select(func.count()).select_from(OutboxMessage)).one() == 0


def test_unique_ids_are_per_event():
    assert Ping(n=1).event_id != Ping(n=1).event_id
    assert isinstance(Ping(n=1).event_id, uuid.UUID)


def _publish_ping(bus: Bus, n: int):
    event = Ping(n=n)
    return bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))


def test_not_yet_is_put_back_uncounted_and_applied_later(nats_server, db_url):
    """Consent unknown: redelivered as often as it takes, never dead-lettered (issue 12 item 1)."""
    engine = _engine(db_url)
    calls: list[int] = []

    def unknown_five_times(session: Session, event: Ping) -> None:
        calls.append(event.n)
        if len(calls) <= 5:
            raise NotYet("consent unknown")
        _record(session, event)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        await _publish_ping(bus, 8)
        consumer = _consumer(bus, engine, handler=unknown_five_times, max_deliver=2, not_yet_delay=0.05)
        consumer.start()
        await _until(lambda: consumer.applied == 1)
        await consumer.stop()
        info = await bus.js.consumer_info("BUSTEST", "bustest_ping")
        assert info.config.max_deliver == -1  # the server never ends a message on its own
        assert consumer.not_yet == 5 and consumer.dead_lettered == 0
        await bus.close()

    asyncio.run(body())
    assert calls == [8] * 6 and _effects(engine) == [8]


def test_infrastructure_failures_are_retried_past_any_limit_and_never_dead_lettered(nats_server, db_url):
    engine = _engine(db_url)
    calls: list[int] = []

    def database_down_for_a_while(session: Session, event: Ping) -> None:
        calls.append(event.n)
        if len(calls) <= 6:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database unavailable"))
        _record(session, event)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        # A durable left by an older release with a server-side limit: updated to no limit.
        await bus.js.add_consumer(
            "BUSTEST",
            ConsumerConfig(name="bustest_ping", durable_name="bustest_ping", filter_subject="bustest.ping.>",
                           ack_policy=AckPolicy.EXPLICIT, max_deliver=5),
        )  # fmt: skip
        await _publish_ping(bus, 9)
        consumer = _consumer(bus, engine, handler=database_down_for_a_while, max_deliver=2, retry_initial=0.02,
                             retry_cap=0.1)  # fmt: skip
        consumer.start()
        await _until(lambda: consumer.applied == 1)
        await consumer.stop()
        info = await bus.js.consumer_info("BUSTEST", "bustest_ping")
        assert info.config.max_deliver == -1
        assert consumer.retried == 6 and consumer.dead_lettered == 0
        await bus.close()

    asyncio.run(body())
    assert calls == [9] * 7 and _effects(engine) == [9]


def test_a_domain_error_is_dead_lettered_at_once(nats_server, db_url):
    engine = _engine(db_url)
    calls: list[int] = []

    def refuses(session: Session, event: Ping) -> None:
        calls.append(event.n)
        raise Conflict("already closed")

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        await _publish_ping(bus, 10)
        consumer = _consumer(bus, engine, handler=refuses, max_deliver=5)
        consumer.start()
        await _until(lambda: consumer.dead_lettered == 1)
        await consumer.stop()
        dlq = await bus.js.pull_subscribe("bustest.dlq.>", stream="BUSTEST", config=ConsumerConfig(name="dlq_domain"))
        (msg,) = await dlq.fetch(1, timeout=5)
        assert msg.headers["Kinwell-Dlq-Reason"] == "Conflict" and Ping.model_validate_json(msg.data).n == 10
        await bus.close()

    asyncio.run(body())
    assert calls == [10]


def test_a_dead_letter_that_cannot_be_stored_leaves_the_message_to_come_back(nats_server, db_url):
    """No stream takes the dead letter: the message is not ended; once one does, it is stored."""
    engine = _engine(db_url)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        with contextlib.suppress(Exception):
            await bus.js.delete_stream("BUSNODLQ")
        await bus.publish("bustest.ping.v1", b'{"type": "bustest.ping.v1", "n": "bad"}', f"bad-{uuid.uuid4()}")
        kw = nats_server.connect_kwargs("ops")
        other = Bus("busnodlq", kw["servers"][0], kw["user"], kw["password"])  # dead letters: busnodlq.dlq.>
        await other.connect()
        consumer = _consumer(other, engine, name="bustest_nodlq", retry_initial=0.05, retry_cap=0.1)
        consumer.start()
        await _until(lambda: consumer.ready)
        deadline = asyncio.get_running_loop().time() + 10
        while (await bus.js.consumer_info("BUSTEST", "bustest_nodlq")).num_redelivered < 1 or consumer.retried < 3:
            assert asyncio.get_running_loop().time() < deadline, "the message did not come back"
            await asyncio.sleep(0.05)
        assert consumer.dead_lettered == 0
        await bus.ensure_stream("BUSNODLQ", ["busnodlq.>"])
        await _until(lambda: consumer.dead_lettered == 1)
        await consumer.stop()
        assert (await bus.js.stream_info("BUSNODLQ")).state.messages == 1
        await bus.js.delete_stream("BUSNODLQ")
        await other.close()
        await bus.close()

    asyncio.run(body())


def test_a_fetched_batch_is_applied_in_one_transaction(nats_server, db_url):
    """Issue 18: one commit per fetched batch (not per message); a repeat inside the batch (same
    event id under another message id) still has one effect."""
    engine = _engine(db_url)
    commits: list[int] = []
    sqlalchemy_event.listen(engine, "commit", lambda _conn: commits.append(1))

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        events = [Ping(n=n) for n in range(60)]
        for e in events:
            await bus.publish(e.subject, e.model_dump_json().encode(), str(e.event_id))
        await bus.publish(events[3].subject, events[3].model_dump_json().encode(), "again-3")  # same event id
        consumer = _consumer(bus, engine, batch=64)
        commits.clear()
        consumer.start()
        await _until(lambda: consumer.applied == 60)
        await consumer.stop()
        assert (await bus.js.consumer_info("BUSTEST", "bustest_ping")).num_ack_pending == 0
        await bus.close()

    asyncio.run(body())
    assert sorted(_effects(engine)) == list(range(60))
    assert len(commits) <= 6, f"{len(commits)} commits for 61 messages"  # one per message before


def test_a_failing_message_leaves_its_batch_mates_applied_once(nats_server, db_url):
    """In one fetched batch: a domain error (dead-lettered), a consent-unknown (put back, applied
    later) and an unexpected failure (retried): every other message applied once, none lost."""
    engine = _engine(db_url)
    calls: dict[int, int] = {}

    def handler(session: Session, event: Ping) -> None:
        calls[event.n] = calls.get(event.n, 0) + 1
        if event.n == 7:
            raise Conflict("never")
        if event.n == 13 and calls[13] <= 2:
            raise NotYet("consent unknown")
        if event.n == 21 and calls[21] <= 2:
            raise RuntimeError("flaky")
        _record(session, event)

    async def body():
        bus = await _bus(nats_server, "BUSTEST")
        for n in range(30):
            await _publish_ping(bus, n)
        consumer = _consumer(bus, engine, handler=handler, batch=64, max_deliver=5, not_yet_delay=0.05,
                             retry_initial=0.02, retry_cap=0.1)  # fmt: skip
        consumer.start()
        await _until(lambda: consumer.applied == 29)
        await consumer.stop()
        assert consumer.dead_lettered == 1 and consumer.not_yet >= 1
        assert (await bus.js.consumer_info("BUSTEST", "bustest_ping")).num_ack_pending == 0
        await bus.close()

    asyncio.run(body())
    assert sorted(_effects(engine)) == [n for n in range(30) if n != 7]
