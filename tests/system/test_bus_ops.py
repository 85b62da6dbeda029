"""Parked outbox rows and the operator's commands (issue 12 items 2 and 4), on a real nats-server
with the production permission file and a real database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Literal

import pytest
from pydantic import TypeAdapter
from sqlmodel import Session

from shared.bus import Bus, Consumer, OutboxRelay, parking, stage, stage_raw
from shared.bus.ops_cli import dead_letters
from shared.bus.outbox import pending_count
from shared.cli import main as kinwell
from shared.db import make_engine, run_migrations
from shared.errors import Conflict
from shared.events.base import Event
from shared.natsserver import NatsServer
from shared.settings import nats_password_env

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"


class Probe(Event):
    type: Literal["checkin.bustest.probe.v1"] = "checkin.bustest.probe.v1"
    subject_template = "checkin.bustest.probe.v1"
    n: int


async def _bus(server: NatsServer, service: str) -> Bus:
    kw = server.connect_kwargs(service)
    bus = Bus(service, kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    return bus


async def _in_stream(js, stream: str, subject: str) -> int:
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


def test_an_unpublishable_row_is_parked_and_the_rest_keeps_flowing(nats_server, db_url, capsys):
    """A row the service may not publish (checkin -> consent.*: the broker refuses, and never
    answers) is tried ``max_attempts`` times, then moved to outbox_dead; rows committed before
    and after it are published meanwhile. Then the operator lists and replays it."""
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    forbidden = f"consent.bustest.{uuid.uuid4().hex}.v1"
    timings: dict[str, float] = {}

    async def body() -> None:
        bus = await _bus(nats_server, "checkin")
        relay = OutboxRelay(engine, bus, poll_interval=0.2, max_attempts=3)
        relay.start()
        started = time.monotonic()
        with Session(engine) as s:
            stage_raw(s, forbidden, b"{}", f"bad-{uuid.uuid4()}")
            for n in range(3):
                stage(s, Probe(n=n))
            s.commit()
        probes = 3
        deadline = time.monotonic() + 30
        while relay.parked == 0:
            assert time.monotonic() < deadline, "never parked"
            with Session(engine) as s:  # the rest keeps arriving while the bad row is retried
                stage(s, Probe(n=probes))
                s.commit()
            probes += 1
            await asyncio.sleep(0.3)
        timings["parked_after_s"] = time.monotonic() - started
        await relay.drain()
        assert pending_count(engine) == 0
        assert await _in_stream(bus.js, "CHECKIN", Probe.subject_template) >= probes  # every probe published
        await relay.stop()
        await bus.close()

    asyncio.run(body())
    (row,) = parking.list_parked(engine)
    assert row["subject"] == forbidden and row["attempts"] == 3 and row["reason"] == "NotAcknowledged"
    assert parking.OUTBOX_PARKED.labels("checkin")._value.get() == 1

    assert kinwell(["outbox", "list", "--service", "checkin", "--database-url", db_url]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["msg_id"] for r in listed] == [row["msg_id"]] and "payload" not in listed[0]
    assert kinwell(["outbox", "replay", "--service", "checkin", "--database-url", db_url, "--all"]) == 0
    assert parking.list_parked(engine) == [] and pending_count(engine) == 1  # back in the outbox
    print(f"\nparked one unpublishable row: {timings}")
    engine.dispose()


def test_an_outage_uses_up_no_attempts(nats_server, db_url):
    """Rows that no stream takes while nothing else is acknowledged either (JetStream away, a
    stream not provisioned yet): retried, never parked."""
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)

    async def body() -> None:
        bus = await _bus(nats_server, "ops")
        relay = OutboxRelay(engine, bus, max_attempts=1)
        relay.ack_timeout = 0.5
        with Session(engine) as s:
            stage_raw(s, f"nostream.{uuid.uuid4().hex}", b"{}", f"lost-{uuid.uuid4()}")
            s.commit()
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await relay.flush_once()
        await bus.close()

    asyncio.run(body())
    assert parking.list_parked(engine) == [] and pending_count(engine) == 1
    engine.dispose()


def test_dlq_list_show_and_replay_as_the_ops_user(nats_server, db_url, monkeypatch, capsys, tmp_path):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    monkeypatch.setenv("KINWELL_NATS_URL", nats_server.url)
    monkeypatch.setenv("KINWELL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(nats_password_env("ops"), nats_server.connect_kwargs("ops")["password"])
    applied: list[int] = []
    broken = [True]

    def handler(session: Session, event: Probe) -> None:
        if broken[0]:
            raise Conflict("not applicable yet")
        applied.append(event.n)

    event = Probe(n=uuid.uuid4().int % 10**6)
    token = uuid.uuid4().hex[:8]
    name = f"checkin__bustest_{token}"
    subject = f"checkin.bustest.{token}.probe.v1"  # this test's own: the stream is shared

    async def consume(until) -> Consumer:
        bus = await _bus(nats_server, "ops")
        bus.service = "checkin"  # its dead letters go to checkin.dlq.> in CHECKIN, as checkin's do
        consumer = Consumer(
            bus, engine, stream="CHECKIN", name=name, filter_subject=subject,
            adapter=TypeAdapter(Probe), handler=handler, fetch_timeout=0.2,
        )  # fmt: skip
        consumer.start()
        deadline = time.monotonic() + 15
        while not until(consumer):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await consumer.stop()
        await bus.close()
        return consumer

    async def publish_and_dead_letter() -> int:
        bus = await _bus(nats_server, "ops")
        await bus.publish(subject, event.model_dump_json().encode(), str(event.event_id))
        await consume(lambda c: c.dead_lettered == 1)
        mine = [m for m in await dead_letters(bus.js, "checkin") if m.headers.get("Kinwell-Dlq-Consumer") == name]
        await bus.close()
        assert len(mine) == 1
        return mine[0].metadata.sequence.stream

    from shared.bus.consumer import ProcessedEvent

    ProcessedEvent.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    seq = asyncio.run(publish_and_dead_letter())

    assert kinwell(["dlq", "list", "--service", "checkin"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [r for r in rows if r["seq"] == seq]
    assert mine and mine[0]["reason"] == "Conflict" and mine[0]["subject"] == subject
    assert kinwell(["dlq", "show", "checkin", str(seq)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["event_id"] == str(event.event_id) and "payload" not in shown
    assert shown["headers"]["Kinwell-Dlq-Consumer"] == name

    broken[0] = False  # the cause is fixed; replay
    assert kinwell(["dlq", "replay", "checkin", "--seq", str(seq)]) == 0
    assert "replayed 1" in capsys.readouterr().out
    asyncio.run(consume(lambda c: c.applied == 1))
    assert applied == [event.n]

    async def left() -> list[int]:
        bus = await _bus(nats_server, "ops")
        seqs = [m.metadata.sequence.stream for m in await dead_letters(bus.js, "checkin")]
        await bus.close()
        return seqs

    assert seq not in asyncio.run(left())  # replayed dead letters are removed
    engine.dispose()
