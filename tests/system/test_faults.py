"""Faults injected into a real check-in service process, a real nats-server and a real database
(issue 12 item 6). After each fault and the recovery, reconcile from the database and the stream:
every accepted check-in is stored once, and its event is in the stream once; every consumed event
is applied once. Loopback only, each test bounded (well under a minute).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from services.checkin.checkins.models import Checkin
from services.checkin.contributions import CONTRIBUTIONS
from shared.auth import Role, dev_token
from shared.bus import Bus
from shared.bus.consumer import ProcessedEvent
from shared.bus.outbox import pending_count
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.db import make_engine, run_migrations
from shared.events.hris import SubjectAssigned
from shared.faults import refuse_in_production
from shared.natsserver import NatsServer
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET, consumer_name
from tests.faultfixtures import ServiceProcess

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"
ANSWERS = {"who5_1": 4, "who5_2": 4, "who5_3": 3, "who5_4": 4, "who5_5": 4, "mood": 4}
PERSONALIZATION = "checkin.personalization.submitted.v2"


@pytest.fixture
def checkin_process(
    service_nats: NatsServer, platform_settings: PlatformSettings, make_db_url
) -> Iterator[ServiceProcess]:
    url = make_db_url("checkin")
    run_migrations(url, MIGRATIONS)  # so the test can read it before the service first starts
    proc = ServiceProcess("checkin", service_nats, platform_settings, url)
    try:
        yield proc
    finally:
        proc.kill()


def _pseudonym(platform: PlatformSettings, sub: str) -> str:
    return pseudonym(platform.secret("pseudonym_key"), platform.tenant, sub)


async def _bus(server: NatsServer, user: str) -> Bus:
    kw = server.connect_kwargs(user)
    bus = Bus(user, kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    return bus


def _grant(server: NatsServer, platform: PlatformSettings, subs: list[str], *purposes: str) -> None:
    async def body() -> None:
        bus = await _bus(server, "consent")
        try:
            kv = await bus.js.key_value(KV_BUCKET)
            for sub in subs:
                for purpose in purposes:
                    await kv.put(kv_key(_pseudonym(platform, sub), purpose), kv_value("granted", 1, "t"))
        finally:
            await bus.close()

    asyncio.run(body())


def _stream(server: NatsServer, stream: str, subject: str) -> list[dict[str, Any]]:
    """Every message of ``stream`` under ``subject``, read as the ops user."""

    async def body() -> list[dict[str, Any]]:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            out = []
            for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                if msg.subject == subject:
                    out.append(json.loads(msg.data or b"{}"))
            return out
        finally:
            await nc.close()

    return asyncio.run(body())


class CheckinLoad:
    """Posts check-ins for ``subs`` round-robin from a thread; records each accepted one (201)."""

    def __init__(self, url: str, platform: PlatformSettings, subs: list[str]) -> None:
        self.url = url
        self.tokens = {s: dev_token(platform, s, [Role.employee]) for s in subs}
        self.accepted: list[str] = []  # check-in ids answered 201
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while not self._stop.is_set():
                for tok in self.tokens.values():
                    try:
                        r = client.post(
                            "/v1/checkins", json={"answers": ANSWERS}, headers={"Authorization": f"Bearer {tok}"}
                        )
                    except httpx.HTTPError:
                        self.refused += 1  # the process died under it: not accepted
                        time.sleep(0.05)
                        continue
                    if r.status_code == 201:
                        self.accepted.append(r.json()["id"])
                    else:
                        self.refused += 1
                        time.sleep(0.02)

    def start(self) -> CheckinLoad:
        self._thread.start()
        return self

    def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out: {what}"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _reconcile_checkins(server: NatsServer, platform: PlatformSettings, db_url: str, subs: list[str],
                        accepted: list[str]) -> dict[str, int]:  # fmt: skip
    """Every accepted check-in stored once; every stored check-in's event in the stream once."""
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + 30
        while pending_count(engine) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pending_count(engine) == 0, "the outbox did not drain after recovery"
        pseudonyms = {_pseudonym(platform, s) for s in subs}
        with Session(engine) as session:
            stored = [row.id for row in session.exec(select(Checkin)).scalars() if row.pseudonym in pseudonyms]
    finally:
        engine.dispose()
    assert len(accepted) == len(set(accepted)), "one id answered twice"
    assert set(accepted) <= set(stored), "an accepted check-in is missing"
    assert len(stored) == len(set(stored))
    events = [e for e in _stream(server, "CHECKIN", PERSONALIZATION) if e["pseudonym"] in pseudonyms]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    # One personalization event per stored check-in (those committed but never answered, when the
    # process died mid-request, included): none lost, none doubled.
    assert len(events) == len(stored), (len(events), len(stored))
    return {"accepted": len(accepted), "stored": len(stored), "events": len(events)}


def test_nats_killed_and_restarted_during_a_stream_of_checkins(service_nats, platform_settings, checkin_process):
    subs = [f"E{uuid.uuid4().hex[:8]}" for _ in range(4)]
    checkin_process.start()
    _grant(service_nats, platform_settings, subs, "checkin", "personalization")
    load = CheckinLoad(checkin_process.url, platform_settings, subs).start()
    try:
        load.until(lambda: len(load.accepted) >= 20, 20, "check-ins before the fault")
        assert service_nats._proc is not None
        service_nats._proc.kill()  # SIGKILL: no clean JetStream shutdown
        service_nats._proc.wait(10)
        refused = load.refused
        load.until(lambda: load.refused > refused, 10, "the service noticing")  # fail closed meanwhile
        service_nats.start()
        before = len(load.accepted)
        load.until(lambda: len(load.accepted) >= before + 20, 30, "check-ins after the restart")
    finally:
        load.stop()
    counts = _reconcile_checkins(service_nats, platform_settings, checkin_process.database_url, subs, load.accepted)
    print(f"\nnats SIGKILLed and restarted mid-stream: {counts}, refused while away: {load.refused}")


def test_checkin_killed_between_commit_and_publish(service_nats, platform_settings, checkin_process):
    """The process dies (SIGKILL, from the armed fault point) the 10th time its relay is about to
    publish committed rows; restarted, it publishes them, once."""
    subs = [f"E{uuid.uuid4().hex[:8]}" for _ in range(4)]
    checkin_process.start(fault="outbox_before_publish:10")
    _grant(service_nats, platform_settings, subs, "checkin", "personalization")
    load = CheckinLoad(checkin_process.url, platform_settings, subs).start()
    try:
        assert checkin_process.wait_killed(30) == -9  # SIGKILL
        engine = make_engine(checkin_process.database_url)
        stranded = pending_count(engine)  # committed, never published: what the crash left
        engine.dispose()
        assert stranded > 0
        checkin_process.start()
        before = len(load.accepted)
        load.until(lambda: len(load.accepted) >= before + 10, 30, "check-ins after the restart")
    finally:
        load.stop()
    counts = _reconcile_checkins(service_nats, platform_settings, checkin_process.database_url, subs, load.accepted)
    print(f"\nkilled between commit and publish ({stranded} rows stranded): {counts}")


def test_checkin_killed_between_a_consumers_effect_and_its_ack(service_nats, platform_settings, checkin_process):
    """The process dies the 8th time a consumer has committed an effect and not yet acked it;
    restarted, the redelivery is recognised by its idempotency record: every event applied once."""
    events = [
        SubjectAssigned(pseudonym=_pseudonym(platform_settings, f"E{uuid.uuid4().hex[:8]}"), org_unit=f"u{n}",
                        effective_from=date(2026, 1, 1))
        for n in range(30)
    ]  # fmt: skip

    async def publish() -> None:
        bus = await _bus(service_nats, "consent")
        try:
            for event in events:
                await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        finally:
            await bus.close()

    asyncio.run(publish())
    checkin_process.start(fault="consumer_before_ack:8", wait_ready=False)  # consumes before it is ready
    assert checkin_process.wait_killed(30) == -9
    name = consumer_name("checkin", "hris.subject.>")
    engine = make_engine(checkin_process.database_url)

    def applied() -> int:
        with Session(engine) as session:
            return int(session.exec(
                select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.consumer == name)  # type: ignore[arg-type]
            ).scalar_one())  # fmt: skip

    at_kill = applied()
    assert at_kill >= 8  # the 8th effect was committed when the process died, unacknowledged
    checkin_process.start()
    deadline = time.monotonic() + 30
    while applied() < len(events):
        assert time.monotonic() < deadline, f"applied {applied()} of {len(events)}"
        time.sleep(0.1)
    with Session(engine) as session:
        ids = set(session.exec(select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == name)).scalars())
        units = session.execute(select(CONTRIBUTIONS.tables.assignments.c.org_unit)).scalars().all()
    engine.dispose()
    assert ids == {str(e.event_id) for e in events}
    assert sorted(units) == sorted(e.org_unit for e in events)  # each effect exactly once

    def duplicates() -> float:
        metrics = httpx.get(checkin_process.metrics_url, timeout=5).text
        mine = f'consumer="{name}"'
        lines = [line for line in metrics.splitlines() if mine in line and 'outcome="duplicate"' in line]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    # The unacknowledged ones come back (after ack_wait) and are recognised: no second effect. With
    # batched commits the whole fetched batch may have been committed before the kill.
    deadline = time.monotonic() + 60
    while duplicates() < 1:
        assert time.monotonic() < deadline, "the unacknowledged messages did not come back"
        time.sleep(0.5)
    print(f"\nkilled between effect and ack: {at_kill} applied at the kill, all {len(events)} once after")


def test_fault_points_are_refused_in_production(monkeypatch):
    monkeypatch.setenv("KINWELL_TEST_FAULT", "consumer_before_ack")
    with pytest.raises(RuntimeError, match="test-only"):
        refuse_in_production("production")
    refuse_in_production("embedded")  # tests may arm them
    monkeypatch.delenv("KINWELL_TEST_FAULT")
    refuse_in_production("production")
