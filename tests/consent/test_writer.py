"""The consent write path: group commit (``shared.db_writer``), and the relay's hand-over of its rows.

Real SQLite / PostgreSQL (``db_url``) and, for the relay, the session's real nats-server with the
provisioned consent KV bucket, connected as the consent user.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path

import nats
from sqlmodel import Session, select

from services.consent.config import ConsentSettings
from services.consent.consents import service
from services.consent.consents.models import Consent
from services.consent.consents.schemas import Channel, ConsentGrant
from services.consent.deps import ConsentContext
from services.consent.directory.models import DirectoryEntry
from services.consent.writer import ConsentWriter
from shared.bus import Bus, OutboxRelay, stage_raw
from shared.bus.outbox import OutboxMessage, Pending, handoff_session, insert_handed, stage_kv
from shared.db import make_engine, run_migrations
from shared.errors import Conflict
from shared.events.consent import Purpose
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET
from tests.consentevents import KeysWithoutNats

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "consent" / "migrations"


def _setup(db_url: str, tmp_path: Path) -> tuple[ConsentContext, object]:
    run_migrations(db_url, MIGRATIONS)
    platform = PlatformSettings(mode="embedded", data_dir=tmp_path / "data")
    ctx = ConsentContext.from_settings(ConsentSettings(platform=platform, database_url=db_url))
    return replace(ctx, event_keys=KeysWithoutNats()), make_engine(db_url)  # type: ignore[arg-type]


def test_a_failing_unit_changes_nothing_and_the_rest_of_its_batch_commits(db_url, tmp_path):
    ctx, engine = _setup(db_url, tmp_path)
    subs = [f"W-{uuid.uuid4().hex[:10]}" for _ in range(3)]

    async def body() -> list[object]:
        writer = ConsentWriter(engine, ctx)  # type: ignore[arg-type]
        grant = ConsentGrant(policy_version=1)
        try:
            results = await asyncio.gather(
                writer.run(lambda s: service.grant(s, ctx, subs[0], Purpose.checkin, grant)),
                # Never granted: the withdrawal enters the subject in the directory, then refuses.
                writer.run(lambda s: service.withdraw(s, ctx, subs[1], Purpose.checkin, Channel.web, None)),
                writer.run(lambda s: service.grant(s, ctx, subs[2], Purpose.checkin, grant)),
                return_exceptions=True,
            )
            assert writer.batches == 1  # one transaction for the three
            return results
        finally:
            await writer.stop()

    results = asyncio.run(body())
    assert isinstance(results[1], Conflict)
    assert [r.state for r in (results[0], results[2])] == ["granted", "granted"]  # type: ignore[union-attr]
    granted, refused = {ctx.pseudonym(subs[0]), ctx.pseudonym(subs[2])}, ctx.pseudonym(subs[1])
    with Session(engine) as session:  # type: ignore[arg-type]
        assert {d.pseudonym for d in session.exec(select(DirectoryEntry))} == granted
        assert {c.pseudonym for c in session.exec(select(Consent))} == granted
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.seq)).all()  # type: ignore[arg-type]
    # Exactly the committed units' messages are in the table, in order (no relay runs here).
    assert len(rows) == 4 and not any(refused in r.subject or refused.encode() in r.payload for r in rows)
    assert [r.subject.startswith("$KV.") for r in rows] == [True, False, True, False]  # KV put before event
    engine.dispose()  # type: ignore[attr-defined]


def test_a_late_delete_never_removes_a_newer_row(db_url, tmp_path):
    """The relay may publish a row twice (a table read racing its hand-over, or another replica's
    relay); the second delete must not hit a newer row, which on SQLite can reuse a deleted row's
    seq. The relay's own delete, as it runs after an acknowledgement."""
    _, engine = _setup(db_url, tmp_path)

    def commit(msg_id: str) -> None:
        with Session(engine) as session:  # type: ignore[arg-type]
            stage_raw(session, "consent.checkin.changed.v1", b"{}", msg_id)
            session.commit()

    relay = OutboxRelay(engine, bus=None)  # type: ignore[arg-type] # deleting needs no broker
    commit("old")
    relay._delete(["old"])
    commit("new")
    relay._delete(["old"])  # the duplicate delete, after "new" took the seq
    with Session(engine) as session:  # type: ignore[arg-type]
        assert [m.msg_id for m in session.exec(select(OutboxMessage))] == ["new"]
    engine.dispose()  # type: ignore[attr-defined]


def _put(engine: object, key: str, state: str, version: int, msg_id: str, *, hand_over: bool) -> list[Pending]:
    with Session(engine) as session:  # type: ignore[call-overload]
        staged = handoff_session(session) if hand_over else None
        stage_kv(session, KV_BUCKET, key, json.dumps({"state": state}).encode(), version, msg_id)
        rows = insert_handed(session, staged) if staged is not None else []
        session.commit()
    return rows


def test_an_older_put_of_a_key_never_wins_whatever_its_path_relay_or_timing(nats_server, db_url, tmp_path):
    """Versioned compare-and-set puts (shared.bus.kvput): the bucket ends with the newest version
    of a key whichever path (table or hand-over), relay or order its puts are published in. (Was:
    the fast path keeps per-key order within one process, which two replicas could not rely on.)"""
    _, engine = _setup(db_url, tmp_path)
    key = f"{uuid.uuid4().hex}{uuid.uuid4().hex}.checkin"
    run = uuid.uuid4().hex

    async def body() -> None:
        kw = nats_server.connect_kwargs("consent")
        buses = [Bus("consent", kw["servers"][0], kw["user"], kw["password"]) for _ in range(2)]
        for bus in buses:
            await bus.connect()
        ops = await nats.connect(**nats_server.connect_kwargs("ops"))
        kv = await ops.jetstream().key_value(KV_BUCKET)

        async def value() -> str:
            return str(json.loads((await kv.get(key)).value or b"{}")["state"])

        relay, other = (OutboxRelay(engine, bus) for bus in buses)  # type: ignore[arg-type]
        try:
            # An older put committed the ordinary way, a newer one handed over: both go out, the
            # newer wins.
            _put(engine, key, "v1", 1, f"{run}-1", hand_over=False)
            stored = relay.handoff(_put(engine, key, "v2", 2, f"{run}-2", hand_over=True))
            assert await relay.flush_once() == 2
            assert stored.done() and await value() == "v2"
            # The newer one handed over first, the older one read from the table later: the older
            # is acknowledged (superseded) and writes nothing.
            relay.handoff(_put(engine, key, "v4", 4, f"{run}-4", hand_over=True))
            assert await relay.flush_once() == 1 and await value() == "v4"
            _put(engine, key, "v3", 3, f"{run}-3", hand_over=False)
            assert await relay.flush_once() == 1
            assert await value() == "v4"
            # Two relays (two replicas) racing puts of one key: the highest version is what stays,
            # in either order.
            for first, second, versions in ((relay, other, (6, 5)), (other, relay, (7, 8))):
                rows = [_put(engine, key, f"v{v}", v, f"{run}-{v}", hand_over=True) for v in versions]
                first.handoff(rows[0])
                second.handoff(rows[1])
                await asyncio.gather(first.flush_once(), second.flush_once())
                assert await value() == f"v{max(versions)}"
            # Alternating relays: the other moved the key since relay's last put (10 by relay, 12
            # by other), so relay's put of 11 must not land ...
            for owner, version in ((relay, 10), (other, 12), (relay, 11)):
                owner.handoff(_put(engine, key, f"v{version}", version, f"{run}-{version}", hand_over=True))
                assert await owner.flush_once() == 1
            assert await value() == "v12"
            owner = relay  # ... and its put of 13 does
            owner.handoff(_put(engine, key, "v13", 13, f"{run}-13", hand_over=True))
            assert await owner.flush_once() == 1 and await value() == "v13"
        finally:
            for r in (relay, other):
                await r.stop()
            await ops.close()
            for bus in buses:
                await bus.close()

    asyncio.run(body())
    engine.dispose()  # type: ignore[attr-defined]


def test_a_put_another_replica_published_first_is_settled(nats_server, db_url, tmp_path):
    """Two replicas, one database: the other replica's relay reads the table and publishes a row
    this replica handed over to its own relay, and deletes it, before this relay reads the table.
    The writer awaiting it is told it is stored (before: it waited for its timeout, then 503)."""
    _, engine = _setup(db_url, tmp_path)
    key = f"{uuid.uuid4().hex}{uuid.uuid4().hex}.checkin"

    async def body() -> None:
        kw = nats_server.connect_kwargs("consent")
        buses = [Bus("consent", kw["servers"][0], kw["user"], kw["password"]) for _ in range(2)]
        for bus in buses:
            await bus.connect()
        relay, other = (OutboxRelay(engine, bus) for bus in buses)  # type: ignore[arg-type]
        try:
            stored = relay.handoff(_put(engine, key, "v1", 1, uuid.uuid4().hex, hand_over=True))
            assert await other.flush_once() == 1  # the other replica's table read took it
            assert await relay.flush_once() == 0  # this relay reads the table (as after a poll)
            await asyncio.wait_for(stored, 2)
        finally:
            for r in (relay, other):
                await r.stop()
            for bus in buses:
                await bus.close()

    asyncio.run(body())
    engine.dispose()  # type: ignore[attr-defined]


def test_stop_finishes_queued_work_and_a_new_relay_publishes_what_was_committed(nats_server, db_url, tmp_path):
    """A restart loses nothing: the writer commits what was queued before it stops, and a relay
    that never saw the hand-over (a new process) publishes those rows from the table."""
    ctx, engine = _setup(db_url, tmp_path)
    subs = [f"S-{uuid.uuid4().hex[:10]}" for _ in range(5)]

    async def body() -> int:
        writer = ConsentWriter(engine, ctx)  # type: ignore[arg-type]
        grant = ConsentGrant(policy_version=1)
        runs = [
            asyncio.ensure_future(writer.run(lambda s, sub=sub: service.grant(s, ctx, sub, Purpose.checkin, grant)))
            for sub in subs
        ]
        await asyncio.sleep(0)  # queued, not yet written
        await writer.stop()
        assert [r.result().state for r in runs] == ["granted"] * 5
        kw = nats_server.connect_kwargs("consent")
        bus = Bus("consent", kw["servers"][0], kw["user"], kw["password"])
        await bus.connect()
        relay = OutboxRelay(engine, bus)  # type: ignore[arg-type]
        try:
            published = 0
            while sent := await relay.flush_once():
                published += sent
            return published
        finally:
            await bus.close()

    assert asyncio.run(body()) == 10  # a KV put and an event per grant
    with Session(engine) as session:  # type: ignore[arg-type]
        assert session.exec(select(OutboxMessage)).all() == []
    engine.dispose()  # type: ignore[attr-defined]
