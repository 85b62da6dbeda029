"""The database is unavailable for longer than the old retry budget, then comes back (issue 12
items 2 and 6): a consumer retries through it and applies every event once; nothing is
dead-lettered.

The old budget: ``max_deliver=5`` with naks of 0.5, 2, 10 and 30 s between the five deliveries,
so a message was dead-lettered 42.5 s after its first failure plus five attempts' own time. On
PostgreSQL the outage is a cut connection path (a loopback TCP proxy that drops every connection
and refuses new ones: each attempt fails at once), so the old budget was 42.5 s. On SQLite the
test holds the file's write lock (``BEGIN EXCLUSIVE``) and the consumer's connections wait 0.2 s
for it, so the old budget was 42.5 + 5 x 0.2 = 43.5 s, plus up to 1 s for the five events in
flight queued behind each other. The outage here lasts 50 s on both; run against the old
consumer, the events in flight were dead-lettered. The new
consumer's backoff cap is shortened to 2 s (the production default is 60 s) so that recovery is
seen within the test's minute.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import TypeAdapter
from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, select

from shared.bus import Bus, Consumer
from shared.db import make_engine, run_migrations
from shared.events.base import Event
from shared.natsserver import free_port

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"
OLD_BUDGET_S = 0.5 + 2 + 10 + 30  # + five attempts' own time: 0 s (PostgreSQL), 5 x 0.2 s (SQLite)
OUTAGE_S = 50.0
BEFORE, IN_FLIGHT, AFTER = 10, 5, 5
EVENTS = BEFORE + IN_FLIGHT + AFTER


class Outage(Event):
    type: Literal["outagetest.tick.v1"] = "outagetest.tick.v1"
    subject_template = "outagetest.tick.v1"
    n: int


class OutageEffect(SQLModel, table=True):
    __tablename__ = "outage_effect"
    id: int | None = Field(default=None, primary_key=True)
    n: int


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can cut the path (drop and refuse connections)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._open):
            writer.close()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.close()
                self._open.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _applied(engine: Any) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(OutageEffect.n)).all())


def test_a_database_outage_longer_than_the_old_budget_dead_letters_nothing(nats_server, db_url):
    run_migrations(db_url, MIGRATIONS)
    setup = make_engine(db_url)
    OutageEffect.__table__.create(setup)  # type: ignore[attr-defined]
    setup.dispose()
    postgres = db_url.startswith("postgresql")
    proxy: Proxy | None = None
    if postgres:
        parts = urlsplit(db_url)
        proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        engine = make_engine(urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}")))
    else:
        engine = make_engine(db_url)

        @event.listens_for(engine, "connect")
        def _short_busy_wait(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=200")  # each attempt waits 0.2 s for the lock

    timings: dict[str, float] = {}
    applied: list[int] = []

    async def body() -> Consumer:
        if proxy is not None:
            await proxy.start()
        kw = nats_server.connect_kwargs("ops")
        bus = Bus("outagetest", kw["servers"][0], kw["user"], kw["password"])
        await bus.connect()
        stream = f"OUTAGE_{uuid.uuid4().hex[:6].upper()}"
        await bus.ensure_stream(stream, ["outagetest.>"])

        async def publish(numbers: range) -> None:
            for n in numbers:
                tick = Outage(n=n)
                await bus.publish(tick.subject, tick.model_dump_json().encode(), str(tick.event_id))

        consumer = Consumer(
            bus, engine, stream=stream, name="outagetest", filter_subject="outagetest.>",
            adapter=TypeAdapter(Outage), handler=lambda s, e: s.add(OutageEffect(n=e.n)),
            fetch_timeout=0.2, retry_initial=0.2, retry_cap=2.0, max_deliver=5,
        )  # fmt: skip
        consumer.start()
        loop = asyncio.get_running_loop()
        lock: sqlite3.Connection | None = None
        try:
            await publish(range(BEFORE))
            while len(await asyncio.to_thread(_applied, engine)) < BEFORE:
                await asyncio.sleep(0.05)
            # The outage begins.
            if proxy is not None:
                await proxy.cut()
            else:
                lock = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
                lock.execute("BEGIN EXCLUSIVE")
            started = loop.time()
            await publish(range(BEFORE, BEFORE + IN_FLIGHT))  # in flight during the outage
            while loop.time() - started < OUTAGE_S:
                await asyncio.sleep(0.5)
                assert consumer.dead_lettered == 0
            # It ends.
            if proxy is not None:
                await proxy.start()
            else:
                assert lock is not None
                lock.execute("COMMIT")
                lock.close()
                lock = None
            timings["outage_s"] = loop.time() - started
            ended = loop.time()
            await publish(range(BEFORE + IN_FLIGHT, EVENTS))
            while len(await asyncio.to_thread(_applied, engine)) < EVENTS:
                assert loop.time() - ended < 15, "not recovered"
                await asyncio.sleep(0.1)
            timings["recovered_after_s"] = loop.time() - ended
            applied.extend(await asyncio.to_thread(_applied, engine))
            return consumer
        finally:
            if lock is not None:
                lock.close()
            await consumer.stop()
            await bus.js.delete_stream(stream)
            await bus.close()

    started = time.monotonic()
    consumer = asyncio.run(body())
    engine.dispose()
    assert sorted(applied) == list(range(EVENTS))  # every event applied, once
    assert consumer.dead_lettered == 0 and consumer.retried > 0
    assert timings["outage_s"] > OLD_BUDGET_S + (0 if postgres else 1 + 1)
    print(f"\ndatabase outage ({'postgresql' if postgres else 'sqlite'}): {timings}, retries {consumer.retried}, "
          f"old budget {OLD_BUDGET_S + (0 if postgres else 1)} s, test {time.monotonic() - started:.1f} s")  # fmt: skip
