"""Outbox relay throughput (commit -> JetStream ack) vs raw ``js.publish`` in the same run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

from sqlmodel import Session

from bench.common import Result, nats_server, sqlite_url
from shared.bus import Bus, OutboxRelay, stage
from shared.db import make_engine, run_migrations
from shared.events.base import Event

N = 20_000
CONCURRENCY = 256
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "checkin" / "migrations"


class BenchEvent(Event):
    type: Literal["checkin.bench.recorded.v1"] = "checkin.bench.recorded.v1"
    subject_template = "checkin.bench.{n}.v1"
    n: int
    value: float


async def _raw(bus: Bus, events: list[BenchEvent]) -> float:
    """The baseline: the same messages, same concurrency, straight to js.publish."""
    t = time.perf_counter()
    for i in range(0, len(events), CONCURRENCY):
        chunk = events[i : i + CONCURRENCY]
        await asyncio.gather(
            *(
                bus.js.publish(e.subject, e.model_dump_json().encode(), headers={"Nats-Msg-Id": f"raw-{e.event_id}"})
                for e in chunk
            )
        )
    return len(events) / (time.perf_counter() - t)


async def _relay(bus: Bus, events: list[BenchEvent]) -> float:
    url = sqlite_url("outbox")
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    with Session(engine) as s:
        for e in events:
            stage(s, e)
        s.commit()
    relay = OutboxRelay(engine, bus, batch_size=CONCURRENCY)
    t = time.perf_counter()
    await relay.drain(timeout=300)
    rate = len(events) / (time.perf_counter() - t)
    engine.dispose()
    return rate


async def _main() -> list[Result]:
    server = nats_server()
    server.start()
    server.provision()
    try:
        kw = server.connect_kwargs("checkin")
        servers = kw["servers"]
        bus = Bus("checkin", servers[0] if isinstance(servers, list) else servers, kw["user"], kw["password"])
        await bus.connect()
        await bus.wait_for_streams()
        # Distinct subjects so the relay's per-subject ordering cut does not apply; warm up both paths.
        await _raw(bus, [BenchEvent(n=i, value=0.5) for i in range(500)])
        raw = await _raw(bus, [BenchEvent(n=i, value=0.5) for i in range(N)])
        relayed = await _relay(bus, [BenchEvent(n=i, value=0.5) for i in range(N)])
        await bus.close()
    finally:
        server.stop()
    return [
        Result(
            name="outbox relay",
            value=relayed,
            unit="ev/s",
            baseline_name="raw js.publish",
            baseline=raw,
            goal=">= 0.5x",
            met=relayed >= 0.5 * raw,
            notes=f"{N:,} events, {CONCURRENCY} in flight, SQLite outbox, file-backed stream",
        )
    ]


def run() -> list[Result]:
    return asyncio.run(_main())
