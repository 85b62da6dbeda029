"""Consumers behind a consent gate that is still loading a large bucket, with a broker restart in
the middle (issue 12 item 1): a consented event is applied once, never dropped as "denied".

Runs on a private nats-server (the session's one is shared, and tens of thousands of keys there
would slow every other test's gate), restarted on the same port and store mid-sync.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter
from sqlmodel import Session, SQLModel, select

from shared.bus import Bus, Consumer
from shared.bus.consumer import ProcessedEvent
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.db import make_engine
from shared.events.checkin import EscalationFlagged, gated
from shared.natsserver import NatsServer
from shared.topology import KV_STREAM, consumer_name

KEYS = 30_000
FILTER = "checkin.escalation.>"


async def _bus(server: NatsServer, service: str) -> Bus:
    kw = server.connect_kwargs(service)
    bus = Bus(service, kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    return bus


async def _bulk_load(server: NatsServer, entries: list[tuple[str, bytes]]) -> None:
    """Put ``entries`` into the bucket pipelined (core publishes, no round trip each), as the
    consent service's user, then wait until the KV stream holds them all."""
    consent = await _bus(server, "consent")
    ops = await _bus(server, "ops")
    try:
        assert consent.nc is not None
        before = (await ops.js.stream_info(KV_STREAM)).state.messages
        for key, value in entries:
            await consent.nc.publish(f"$KV.consent.{key}", value)
        await consent.nc.flush()
        deadline = time.monotonic() + 30
        while (await ops.js.stream_info(KV_STREAM)).state.messages < before + len(entries):
            assert time.monotonic() < deadline, "bulk load did not land"
            await asyncio.sleep(0.05)
    finally:
        await consent.close()
        await ops.close()


def _flag(pseudonym: str) -> EscalationFlagged:
    return EscalationFlagged(
        pseudonym=pseudonym, checkin_ref=uuid.uuid4(), severity="critical", reasons=["crisis_language"],
        contact_requested=False, lang="en", flagged_at=datetime.now(UTC),
    )  # fmt: skip


def test_a_consented_flag_is_applied_once_while_the_gate_loads_a_large_bucket_across_a_restart(
    tmp_path: Path, db_url: str
) -> None:
    granted, never = secrets.token_hex(32), secrets.token_hex(32)
    # Tens of thousands of other keys, then the employee's grant last: the gate learns of it only
    # at the very end of its replay.
    noise = [(kv_key(secrets.token_hex(32), "checkin"), kv_value("granted", 1, "t")) for _ in range(KEYS)]
    noise.append((kv_key(granted, "escalation"), kv_value("granted", 1, "t")))
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine, tables=[ProcessedEvent.__table__])  # type: ignore[list-item]
    applied: list[str] = []
    timings: dict[str, float] = {}

    with NatsServer(tmp_path / "nats") as server:
        server.provision()
        started = time.monotonic()
        asyncio.run(_bulk_load(server, noise))
        timings["bulk_load_s"] = time.monotonic() - started

        async def body() -> Consumer:
            ops = await _bus(server, "ops")
            flags = [_flag(granted), _flag(never)]
            for event in flags:
                await ops.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
            await ops.close()
            bus = await _bus(server, "escalation")
            gate = ConsentGate()
            consumer = Consumer(
                bus, engine, stream="CHECKIN", name=consumer_name("escalation", FILTER), filter_subject=FILTER,
                adapter=TypeAdapter(EscalationFlagged), fetch_timeout=0.2, not_yet_delay=0.2,
                handler=gated(gate, lambda _session, event: applied.append(event.pseudonym)),
            )  # fmt: skip
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await gate.start(bus)
            consumer.start()  # at once, as a service does: the consumer itself must wait for the gate
            try:
                # Mid-replay: some of the bucket seen, not synced yet. Restart the broker here.
                while gate.revision < KEYS // 4:
                    assert not gate.synced, "synced before the restart: the bucket is too small"
                    assert loop.time() - t0 < 20, "the replay did not start"
                    await asyncio.sleep(0.005)
                assert not gate.synced and applied == []
                await asyncio.to_thread(server.restart)
                t1 = loop.time()
                await asyncio.wait_for(gate.wait_synced(), timeout=30)
                timings["sync_after_restart_s"] = loop.time() - t1
                deadline = loop.time() + 20
                while not (applied and await asyncio.to_thread(_processed, engine, {str(f.event_id) for f in flags})):
                    assert loop.time() < deadline, f"not applied: {applied}"
                    await asyncio.sleep(0.05)
                timings["flag_applied_after_start_s"] = loop.time() - t0
                info = await bus.js.consumer_info("CHECKIN", consumer.name)
                assert info.num_ack_pending == 0
                # What a consumer starting now waits for: a fresh gate's replay of the whole bucket.
                fresh = ConsentGate()
                t2 = loop.time()
                await fresh.start(bus)
                await asyncio.wait_for(fresh.wait_synced(), timeout=30)
                timings["fresh_gate_sync_s"] = loop.time() - t2
                assert fresh.allowed(granted, "escalation")
                await fresh.stop()
                return consumer
            finally:
                await consumer.stop()
                await gate.stop()
                await bus.close()

        consumer = asyncio.run(body())

    assert applied == [granted]  # applied once; the never-consented one dropped (denied, not unknown)
    assert consumer.dead_lettered == 0
    print(f"\ngate with {KEYS + 1} keys across a broker restart: {timings}, put back (not yet): {consumer.not_yet}")
    engine.dispose()


def _processed(engine: object, event_ids: set[str]) -> bool:
    with Session(engine) as session:  # type: ignore[call-overload]
        done = set(session.exec(select(ProcessedEvent.event_id)).all())
    return event_ids <= done
