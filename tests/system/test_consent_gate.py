"""The consent gate follows the KV bucket and fails closed, against a real nats-server."""

from __future__ import annotations

import asyncio
import secrets

from shared.bus import Bus
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.natsserver import NatsServer
from shared.settings import SERVICES
from shared.topology import KV_BUCKET

ALICE = secrets.token_hex(32)  # the session's server is shared: keys of this module's own
BOB = secrets.token_hex(32)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _bus(server: NatsServer, service: str) -> Bus:
    kw = server.connect_kwargs(service)
    servers = kw["servers"]
    bus = Bus(service, servers[0] if isinstance(servers, list) else servers, kw["user"], kw["password"])
    await bus.connect()
    return bus


def test_unsynced_gate_denies():
    gate = ConsentGate()
    assert not gate.allowed(ALICE, "checkin")
    gate.load({kv_key(ALICE, "checkin"): kv_value("granted", 1, "t")})
    assert gate.allowed(ALICE, "checkin")
    gate.mark_unsynced()
    assert not gate.allowed(ALICE, "checkin")


def test_gate_follows_grants_and_withdrawals(nats_server):
    async def body():
        consent = await _bus(nats_server, "consent")
        checkin = await _bus(nats_server, "checkin")
        kv = await consent.js.key_value(KV_BUCKET)  # provisioned, as by `kinwell up`
        await kv.put(kv_key(ALICE, "checkin"), kv_value("granted", 1, "t"))
        revoked: list[tuple[str, str]] = []
        gate = ConsentGate()
        gate.on_revoked(lambda s, p: revoked.append((s, p)))
        await gate.start(checkin)
        await _until(lambda: gate.synced)
        assert gate.allowed(ALICE, "checkin")
        assert not gate.allowed(ALICE, "personalization")
        assert not gate.allowed(BOB, "checkin")

        await kv.put(kv_key(BOB, "checkin"), kv_value("granted", 1, "t"))
        await _until(lambda: gate.allowed(BOB, "checkin"))
        await kv.put(kv_key(ALICE, "checkin"), kv_value("withdrawn", 1, "t"))
        await _until(lambda: not gate.allowed(ALICE, "checkin"))
        assert revoked == [(ALICE, "checkin")]
        await kv.delete(kv_key(BOB, "checkin"))
        await _until(lambda: not gate.allowed(BOB, "checkin"))
        await gate.stop()
        await consent.close()
        await checkin.close()

    asyncio.run(body())


def test_gate_denies_while_nats_is_down_and_resyncs_after(tmp_path):
    passwords = {svc: secrets.token_urlsafe(16) for svc in (*SERVICES, "ops")}
    server = NatsServer(store_dir=tmp_path / "js", passwords=passwords)
    server.start()
    server.provision()
    try:

        async def body():
            consent = await _bus(server, "consent")
            checkin = await _bus(server, "checkin")
            kv = await consent.js.key_value(KV_BUCKET)
            await kv.put(kv_key(ALICE, "escalation"), kv_value("granted", 1, "t"))
            gate = ConsentGate()
            await gate.start(checkin)
            await _until(lambda: gate.allowed(ALICE, "escalation"))

            server.stop()
            await _until(lambda: not gate.synced)
            assert not gate.allowed(ALICE, "escalation")

            server.restart()
            await _until(lambda: gate.synced, timeout=20)
            assert gate.allowed(ALICE, "escalation")
            await gate.stop()
            await consent.close()
            await checkin.close()

        asyncio.run(body())
    finally:
        server.stop()


def _tracked(*events: tuple[str, str]) -> tuple[ConsentGate, list[tuple[str, str]], list[tuple[str, str]]]:
    """A synced gate with listeners: (gate, denied, revoked)."""
    gate = ConsentGate(track_revisions=True)
    gate.load({})
    denied: list[tuple[str, str]] = []
    revoked: list[tuple[str, str]] = []
    gate.on_denied(lambda s, p: denied.append((s, p)))
    gate.on_revoked(lambda s, p: revoked.append((s, p)))
    return gate, denied, revoked


def test_withdrawing_denies_at_once_but_listeners_hear_only_the_committed_withdrawal():
    gate, denied, revoked = _tracked()
    key = kv_key(ALICE, "checkin")
    gate.apply(key, kv_value("granted", 3, "t"), revision=7)
    assert gate.allowed(ALICE, "checkin") and gate.granted_revision(ALICE, "checkin") == (7, 3)

    gate.apply(key, kv_value("withdrawing", 3, "t"), revision=8)
    assert not gate.allowed(ALICE, "checkin")
    assert denied == [(ALICE, "checkin")] and revoked == []  # purpose-only data stays for now
    assert gate.granted_revision(ALICE, "checkin") is None and gate.suspended() == {key}

    gate.apply(key, kv_value("withdrawn", 3, "t"), revision=9)
    assert not gate.allowed(ALICE, "checkin")
    assert revoked == [(ALICE, "checkin")] and denied == [(ALICE, "checkin")] and gate.suspended() == set()


def test_a_withdrawal_put_back_tells_no_revocation_listener():
    gate, denied, revoked = _tracked()
    key = kv_key(BOB, "work_patterns")
    gate.apply(key, kv_value("granted", 1, "t"), revision=1)
    gate.apply(key, kv_value("withdrawing", 1, "t"), revision=2)
    gate.apply(key, kv_value("granted", 1, "t"), revision=3)  # the withdrawal failed: restored
    assert gate.allowed(BOB, "work_patterns") and gate.granted_revision(BOB, "work_patterns") == (3, 1)
    assert denied == [(BOB, "work_patterns")] and revoked == [] and gate.suspended() == set()
    # A deletion (erasure) of a granted key is a committed revocation.
    gate.apply(key, None, deleted=True, revision=4)
    assert revoked == [(BOB, "work_patterns")] and not gate.allowed(BOB, "work_patterns")


def test_a_withdrawing_key_first_seen_on_replay_is_revoked_when_it_commits():
    gate, denied, revoked = _tracked()
    key = kv_key(ALICE, "escalation")
    gate.apply(key, kv_value("withdrawing", 1, "t"), revision=5)  # replay: the grant is history
    assert not gate.allowed(ALICE, "escalation") and denied == [] and revoked == []
    gate.apply(key, kv_value("withdrawn", 1, "t"), revision=6)
    assert revoked == [(ALICE, "escalation")]
    # A plain untracked gate keeps no revisions.
    plain = ConsentGate()
    plain.load({key: kv_value("granted", 1, "t")})
    assert plain.allowed(ALICE, "escalation") and plain.granted_revision(ALICE, "escalation") is None
