"""The broker enforces purpose limitation: a real nats-server running the committed auth.conf.

Denied publishes and subscriptions are reported asynchronously (``-ERR 'Permissions Violation
...'``), in order with the PONG of a later PING, so after :func:`flushed` the error log is
complete. A denied JetStream API request simply never gets a reply (the client times out).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, RePublish, StreamConfig, StreamInfo, StreamSource
from nats.js.kv import KeyValue

from shared import natsperm
from shared import topology as t
from shared.natsserver import USERS, NatsServer, NatsServerError, free_port
from shared.settings import SERVICES
from tests.natsfixtures import ErrorLog, NatsConnect, flushed

STREAM_IN_USE = 10058  # "stream name already in use with a different configuration"
TEST_SUBJECT = "{}.test.permission.v1"  # under each prefix; no consumer filters *.test.>


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """This module's own server (overrides the session one, same config and permissions).

    These tests create the topology's streams and consumers with default configs; on the shared
    server those would be what later tests of the real services find.
    """
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with NatsServer(tmp_path_factory.mktemp("nats-perms"), passwords=passwords) as server:
        server.provision()
        yield server


async def ensure_stream(js: JetStreamContext, name: str) -> StreamInfo:
    """A provisioned topology stream, as the service sees it (services cannot create streams)."""
    return await js.stream_info(name)


async def ensure_kv(js: JetStreamContext) -> KeyValue:
    return await js.key_value(t.KV_BUCKET)


async def connect_logged(nats_connect: NatsConnect, service: str) -> tuple[Client, ErrorLog]:
    log = ErrorLog()
    return await nats_connect(service, error_cb=log.record), log


async def assert_publish(nc: Client, log: ErrorLog, subject: str, *, allowed: bool) -> None:
    await nc.publish(subject, b"{}", reply=nc.new_inbox())
    await flushed(nc)
    denied = log.has(f'publish to "{subject}"')
    assert denied is not allowed, f"{subject}: expected {'allowed' if allowed else 'denied'}, got {log.errors}"


# --- the permission file ---------------------------------------------------------------------


def test_committed_auth_conf_is_generated_from_topology(tmp_path: Path) -> None:
    assert natsperm.AUTH_CONF.read_text() == natsperm.render_auth_conf()
    assert natsperm.main(["--check"]) == 0
    stale = tmp_path / "auth.conf"
    stale.write_text(natsperm.render_auth_conf().replace('"hris.>"', '">"'))
    assert natsperm.main(["--check", "--path", str(stale)]) == 1


def test_every_service_user_has_allow_lists_only() -> None:
    for service in SERVICES:
        perms = natsperm.service_permissions(service)
        pub, sub = perms.subjects("publish"), perms.subjects("subscribe")
        assert ">" not in pub and ">" not in sub and "$JS.API.>" not in pub
        assert sub[0] == f"_INBOX_{service}.>"
        assert not [s for s in pub if s.startswith("$JS.API.CONSUMER.DURABLE.")]
        own_streams = {s.name for s in t.streams_declared_by(service)}
        assert {s.split(".")[-1] for s in pub if s.startswith("$JS.API.STREAM.CREATE.")} <= own_streams | {t.KV_STREAM}
    agg = natsperm.service_permissions("aggregator")
    assert not [s for s in agg.subjects("publish") if "CHECKIN" in s or s.startswith("checkin.")]
    assert "contribution.>" not in agg.subjects("publish")


# --- core publish / subscribe ------------------------------------------------------------------


def test_aggregator_cannot_subscribe_to_checkin(nats_connect: NatsConnect) -> None:
    async def body() -> None:
        agg, log = await connect_logged(nats_connect, "aggregator")
        ops, checkin = await nats_connect("ops"), await nats_connect("checkin")
        seen_by_agg: list[bytes] = []
        seen_by_ops: list[bytes] = []

        async def agg_cb(msg: Msg) -> None:
            seen_by_agg.append(msg.data)

        async def ops_cb(msg: Msg) -> None:
            seen_by_ops.append(msg.data)

        await agg.subscribe("checkin.>", cb=agg_cb)
        await ops.subscribe("checkin.>", cb=ops_cb)  # control: the message really is sent
        await flushed(agg)
        await flushed(ops)
        assert log.has('subscription to "checkin.>"'), log.errors

        marker = uuid.uuid4().hex.encode()
        await checkin.publish(TEST_SUBJECT.format("checkin"), marker)
        await flushed(checkin)
        async with asyncio.timeout(2):
            while marker not in seen_by_ops:
                await asyncio.sleep(0.01)
        await flushed(agg)
        assert marker not in seen_by_agg

    asyncio.run(body())


@pytest.mark.parametrize("service", SERVICES)
def test_service_may_publish_under_its_own_prefix(nats_connect: NatsConnect, service: str) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, service)
        await assert_publish(nc, log, TEST_SUBJECT.format(service), allowed=True)
        if service == "consent":
            await assert_publish(nc, log, "hris.test.permission.v1", allowed=True)

    asyncio.run(body())


@pytest.mark.parametrize(
    ("service", "subject"),
    [
        ("recommender", "checkin.x"),
        ("aggregator", "contribution.x"),  # only the three producers contribute
        ("aggregator", "escalation.x"),
        ("checkin", "consent.granted.v1"),
        ("checkin", "subject.erasure.requested.v1"),  # only consent requests erasure
        ("escalation", "hris.org.changed.v1"),
        ("checkin", "$KV.consent.someone"),  # only consent writes consent state
        ("recommender", "subject.export.checkin.v1"),  # only consent asks for exports
        ("checkin", "_INBOX_consent.spoofed-reply"),  # nor answer into another's inbox
        ("recommender", "$JS.API.STREAM.CREATE.CHECKIN"),
        ("checkin", "$JS.API.STREAM.NAMES"),
    ],
)
def test_publishing_outside_own_prefix_is_denied(nats_connect: NatsConnect, service: str, subject: str) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, service)
        await assert_publish(nc, log, subject, allowed=False)

    asyncio.run(body())


@pytest.mark.parametrize(
    ("service", "subject"),
    [
        ("checkin", "_INBOX_consent.>"),
        ("checkin", "_INBOX.>"),
        ("recommender", "subject.export.checkin.v1"),
        ("aggregator", "contribution.>"),  # reads contributions through its consumer only
        ("escalation", "$KV.consent.>"),
    ],
)
def test_subscribing_outside_own_inbox_and_requests_is_denied(
    nats_connect: NatsConnect, service: str, subject: str
) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, service)
        await nc.subscribe(subject)
        await flushed(nc)
        assert log.has(f'subscription to "{subject}"'), log.errors

    asyncio.run(body())


def test_consent_collects_exports_by_request_reply(nats_connect: NatsConnect) -> None:
    async def body() -> None:
        consent, checkin = await nats_connect("consent"), await nats_connect("checkin")

        async def answer(msg: Msg) -> None:
            await msg.respond(b'{"records": []}')  # allowed once via allow_responses

        await checkin.subscribe(t.export_subject("checkin"), cb=answer)
        await flushed(checkin)
        reply = await consent.request(t.export_subject("checkin"), b"{}", timeout=2)
        assert reply.data == b'{"records": []}'

    asyncio.run(body())


# --- JetStream -------------------------------------------------------------------------------


def test_checkin_finds_its_stream_and_gets_a_puback(nats_connect: NatsConnect) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, "checkin")
        js = nc.jetstream(timeout=2)
        assert (await ensure_stream(js, "CHECKIN")).config.name == "CHECKIN"
        await ensure_stream(js, "CONTRIBUTION")
        ack = await js.publish(TEST_SUBJECT.format("checkin"), b"{}")
        assert ack.stream == "CHECKIN" and ack.seq >= 1
        await flushed(nc)
        assert not log.errors

    asyncio.run(body())


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_may_create_or_update_a_stream(nats_connect: NatsConnect, service: str) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, service)
        js = nc.jetstream(timeout=0.5)
        for stream in [*t.streams_declared_by(service), t.STREAMS["CHECKIN"]]:
            config = StreamConfig(name=stream.name, subjects=list(stream.subjects))
            for op in (js.add_stream, js.update_stream):
                with pytest.raises(nats.errors.TimeoutError):
                    await op(config)
        await log.wait_for(f'publish to "$JS.API.STREAM.CREATE.{t.streams_declared_by(service)[0].name}"')

    asyncio.run(body())


def test_recommender_creates_only_its_exact_consumer_on_checkin(nats_connect: NatsConnect) -> None:
    (spec,) = [c for c in t.consumers_for("recommender") if c.stream == "CHECKIN"]

    async def body() -> None:
        checkin = await nats_connect("checkin")
        await ensure_stream(checkin.jetstream(timeout=2), "CHECKIN")
        nc, log = await connect_logged(nats_connect, "recommender")
        js = nc.jetstream(timeout=2)

        info = await js.add_consumer(
            spec.stream, ConsumerConfig(name=spec.name, durable_name=spec.name, filter_subject=spec.filter_subject)
        )
        assert info.name == spec.name and info.config.filter_subject == spec.filter_subject

        # ... and reads through it: fetch (MSG.NEXT) and ack ($JS.ACK) are allowed.
        marker = uuid.uuid4().hex.encode()
        await checkin.jetstream().publish("checkin.personalization.permtest.v1", marker)
        sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
        async with asyncio.timeout(5):
            while True:  # earlier tests may have left messages on this consumer
                (msg,) = await sub.fetch(1, timeout=2)
                await msg.ack_sync()
                if msg.data == marker:
                    break

        # The same name with a broader or another purpose's filter, or another's name: denied.
        for name, filt in [
            (spec.name, "checkin.escalation.>"),
            (spec.name, "checkin.>"),
            (t.consumer_name("escalation", "checkin.escalation.>"), "checkin.escalation.>"),
        ]:
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_consumer(
                    "CHECKIN", ConsumerConfig(name=name, durable_name=name, filter_subject=filt), timeout=0.5
                )
            await log.wait_for(f'publish to "$JS.API.CONSUMER.CREATE.CHECKIN.{name}.{filt}"')

    asyncio.run(body())


def test_server_rejects_a_body_filter_that_differs_from_the_permitted_subject(nats_connect: NatsConnect) -> None:
    # Why the CREATE.<stream>.<name>.<filter> permission pins the purpose: the server checks it.
    (spec,) = [c for c in t.consumers_for("recommender") if c.stream == "CHECKIN"]

    async def body() -> None:
        await ensure_stream((await nats_connect("checkin")).jetstream(), "CHECKIN")
        nc = await nats_connect("recommender")
        subject = f"$JS.API.CONSUMER.CREATE.CHECKIN.{spec.name}.{spec.filter_subject}"
        for wider in ({"filter_subject": "checkin.>"}, {"filter_subjects": ["checkin.>"]}):
            config = {"name": spec.name, "durable_name": spec.name, "ack_policy": "explicit", **wider}
            reply = await nc.request(subject, json.dumps({"stream_name": "CHECKIN", "config": config}).encode())
            assert json.loads(reply.data)["error"]["code"] == 400

    asyncio.run(body())


@pytest.mark.parametrize(
    "api_subject",
    [
        "$JS.API.CONSUMER.CREATE.CHECKIN",  # legacy ephemeral (what js.subscribe uses)
        "$JS.API.CONSUMER.CREATE.CHECKIN.aggregator__checkin",
        "$JS.API.CONSUMER.CREATE.CHECKIN.aggregator__checkin.checkin.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.CHECKIN.aggregator__checkin",
        "$JS.API.CONSUMER.MSG.NEXT.CHECKIN.recommender__checkin_personalization",
        "$JS.API.STREAM.MSG.GET.CHECKIN",
        "$JS.API.DIRECT.GET.CHECKIN",
    ],
)
def test_aggregator_cannot_create_or_read_a_consumer_on_checkin(nats_connect: NatsConnect, api_subject: str) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, "aggregator")
        await assert_publish(nc, log, api_subject, allowed=False)

    asyncio.run(body())


def test_aggregator_js_subscribe_to_checkin_fails(nats_connect: NatsConnect) -> None:
    async def body() -> None:
        nc, log = await connect_logged(nats_connect, "aggregator")
        with pytest.raises(nats.errors.TimeoutError):
            await nc.jetstream(timeout=0.5).subscribe("checkin.>", stream="CHECKIN")
        await log.wait_for('publish to "$JS.API.CONSUMER.CREATE.CHECKIN"')

    asyncio.run(body())


def test_kv_watcher_sees_consent_updates(nats_connect: NatsConnect) -> None:
    key = f"permtest-{uuid.uuid4().hex}"

    async def body() -> None:
        consent, log = await connect_logged(nats_connect, "consent")
        kv = await ensure_kv(consent.jetstream(timeout=2))
        await kv.put(key, b"granted")
        assert (await kv.get(key)).value == b"granted"  # direct get

        checkin, watch_log = await connect_logged(nats_connect, "checkin")
        watcher = await (await checkin.jetstream(timeout=2).key_value(t.KV_BUCKET)).watch(key)
        first = await watcher.updates(timeout=2)
        assert first is not None and first.value == b"granted"
        await kv.put(key, b"withdrawn")
        async with asyncio.timeout(3):
            while True:  # a None marker separates the initial values from live updates
                entry = await watcher.updates(timeout=2)
                if entry is not None:
                    break
        assert entry.value == b"withdrawn"
        await watcher.stop()
        await assert_publish(checkin, watch_log, f"$KV.consent.{key}", allowed=False)
        await flushed(consent)
        assert not log.errors

    asyncio.run(body())


def test_every_service_can_declare_and_read_everything_the_topology_gives_it(nats_connect: NatsConnect) -> None:
    # The permission file is complete: a start-up of all five services hits no violation.
    async def body() -> None:
        clients = {s: await connect_logged(nats_connect, s) for s in SERVICES}
        for service, (nc, _) in clients.items():
            js = nc.jetstream(timeout=2)
            await js.account_info()
            for stream in t.streams_declared_by(service):
                await ensure_stream(js, stream.name)
                await js.stream_info(stream.name)
            if service == t.KV_WRITER:
                await ensure_kv(js)
        for service, (nc, log) in clients.items():
            js = nc.jetstream(timeout=2)
            for c in t.consumers_for(service):
                sub = await js.pull_subscribe(c.filter_subject, durable=c.name, stream=c.stream)
                assert (await sub.consumer_info()).config.filter_subject == c.filter_subject
                try:
                    for msg in await sub.fetch(1, timeout=0.05):
                        await msg.nak()
                except nats.errors.TimeoutError:
                    pass  # nothing pending: the fetch itself was allowed
            if service in t.KV_WATCHERS:
                watcher = await (await js.key_value(t.KV_BUCKET)).watchall()
                await watcher.updates(timeout=2)
                await watcher.stop()
            await flushed(nc)
            assert not log.errors, (service, log.errors)

    asyncio.run(body())


def test_stream_create_cannot_be_used_to_copy_another_stream(tmp_path: Path) -> None:
    # Own server: this test deliberately reconfigures a stream.
    async def body(server: NatsServer) -> None:
        checkin = await nats.connect(**server.connect_kwargs("checkin"))
        agg = await nats.connect(**server.connect_kwargs("aggregator"))
        try:
            await ensure_stream(checkin.jetstream(), "CHECKIN")
            await checkin.jetstream().publish("checkin.personalization.mood.v1", b"private")
            leaked: list[bytes] = []

            async def cb(msg: Msg) -> None:
                leaked.append(msg.data)

            await agg.subscribe("_INBOX_aggregator.leak.>", cb=cb)
            await flushed(agg)
            config = StreamConfig(
                name="AGGREGATOR",
                subjects=["aggregator.>"],
                sources=[StreamSource(name="CHECKIN")],
                republish=RePublish(src=">", dest="_INBOX_aggregator.leak.>"),
            )
            # Services may not declare streams at all (only the provisioner does), so the
            # sourcing-and-republishing trick is refused before it starts.
            with pytest.raises(nats.errors.TimeoutError):
                await agg.jetstream(timeout=1).add_stream(config)
            with pytest.raises(nats.errors.TimeoutError):
                await agg.jetstream(timeout=1).update_stream(config)
            await asyncio.sleep(0.5)
            assert leaked == []
        finally:
            await checkin.close()
            await agg.close()

    with NatsServer(tmp_path / "nats") as server:
        server.provision()
        asyncio.run(body(server))


# --- the launcher these tests stand on ---------------------------------------------------------


def test_launcher_restart_keeps_jetstream_state(tmp_path: Path) -> None:
    async def publish(server: NatsServer) -> None:
        nc = await nats.connect(**server.connect_kwargs("checkin"))
        await ensure_stream(nc.jetstream(), "CHECKIN")
        await nc.jetstream().publish(TEST_SUBJECT.format("checkin"), b"kept")
        await nc.close()

    async def count(server: NatsServer) -> int:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        info = await nc.jetstream().stream_info("CHECKIN")
        await nc.close()
        return info.state.messages

    with NatsServer(tmp_path / "nats", passwords={"checkin": "-starts-with-dash"}) as server:
        server.provision()
        asyncio.run(publish(server))
        port = server.port
        server.restart()
        assert server.port == port and server.running
        assert asyncio.run(count(server)) == 1
    assert not server.running


def test_launcher_reports_a_taken_port_and_a_missing_binary(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NatsServerError, match=f"port {nats_server.port} is already in use"):
        NatsServer(tmp_path / "a", port=nats_server.port).start()
    monkeypatch.setattr("sys.executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="nats-server binary not found"):
        NatsServer(tmp_path / "b", port=free_port()).start()
