"""The platform's NATS as deployed on Kubernetes, on loopback: three nats-server processes with
routes, Kinwell's config and permission file, streams provisioned with 3 replicas. A stream of
check-in events is published (as the check-in service, with its outbox's message ids) and read
by the recommender's durable consumer while the stream's leader is stopped: nothing is lost,
nothing is applied twice; the stopped node comes back and catches up."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, NoStreamResponseError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from shared.bus import Bus
from shared.bus.provision import provision_url
from shared.natsserver import USERS, NatsServer, free_port
from shared.topology import consumer_name

EVENTS = 60
STOP_AFTER = 20
SUBJECT = "checkin.personalization.updated.v1"
FILTER = "checkin.personalization.>"


def cluster_nodes(tmp_path: Path) -> list[NatsServer]:
    """Three routed nodes as on Kubernetes (one StatefulSet), not yet started."""
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    routes = [free_port() for _ in range(3)]
    route_urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    return [
        NatsServer(
            tmp_path / f"n{i}",
            passwords=passwords,
            extra_args=(
                "--name",
                f"n{i}",
                "--cluster_name",
                "kinwell",
                "--cluster",
                f"nats://127.0.0.1:{routes[i]}",
                "--routes",
                route_urls,
            ),
        )  # fmt: skip
        for i in range(3)
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    nodes = cluster_nodes(tmp_path)
    # No node is ready alone (JetStream needs a quorum): start all three at once.
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: n.start(timeout=30), nodes))
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def urls(nodes: list[NatsServer]) -> str:
    return ",".join(n.url for n in nodes)


async def publish_with_retry(bus: Bus, subject: str, data: bytes, msg_id: str) -> None:
    # As the outbox relay does: the same message id until JetStream acknowledges it.
    retrying = AsyncRetrying(
        stop=stop_after_attempt(200),
        wait=wait_fixed(0.1),
        retry=retry_if_exception_type((TimeoutError, NatsTimeout, NoStreamResponseError, APIError, nats.errors.Error)),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await bus.publish(subject, data, msg_id)


def test_provisioning_a_cluster_that_is_still_forming_waits_for_it(tmp_path: Path):
    # The provisioning Job starts beside the StatefulSet's pods: here two nodes are up, but a
    # new cluster elects no metadata leader before it has seen its third peer, and JetStream
    # answers "temporarily unavailable" (then "no suitable peers" while that peer is not yet
    # seen as online). Provisioning rides that out instead of failing the Job.
    nodes = cluster_nodes(tmp_path)
    ops = nodes[0].passwords["ops"]
    try:
        with ThreadPoolExecutor(3) as pool:
            starting = [pool.submit(n.start, 30) for n in nodes[:2]]
            for _ in range(500):
                if nodes[0]._accepting():
                    break
                time.sleep(0.02)
            began = time.monotonic()
            provisioning = pool.submit(asyncio.run, provision_url(nodes[0].url, ops, replicas=3, patience_s=45))
            time.sleep(2)
            assert not provisioning.done(), "provisioning ended before the cluster could take it"
            nodes[2].start(timeout=30)
            declared = provisioning.result(timeout=60)
            took = time.monotonic() - began
            for started in starting:
                started.result(timeout=30)
        assert "CHECKIN" in declared and took >= 2

        async def replicas() -> int:
            nc = await nats.connect(**{**nodes[0].connect_kwargs("ops"), "servers": urls(nodes).split(",")})
            try:
                return (await nc.jetstream().stream_info("CHECKIN")).config.num_replicas
            finally:
                await nc.close()

        assert asyncio.run(replicas()) == 3
    finally:
        for node in nodes:
            node.stop()


def test_losing_the_stream_leader_loses_nothing_and_counts_nothing_twice(cluster: list[NatsServer]):
    ops = cluster[0].passwords["ops"]
    declared = asyncio.run(provision_url(urls(cluster), ops, replicas=3, patience_s=45))
    assert "CHECKIN" in declared

    async def body() -> tuple[list[str], str]:
        producer = Bus("checkin", urls(cluster), "checkin", cluster[0].passwords["checkin"], replicas=3)
        await producer.connect(timeout=5)
        nc = await nats.connect(**{**cluster[0].connect_kwargs("recommender"), "servers": urls(cluster).split(",")},
                                max_reconnect_attempts=-1, reconnect_time_wait=0.2)  # fmt: skip
        ops_nc = await nats.connect(**{**cluster[0].connect_kwargs("ops"), "servers": urls(cluster).split(",")},
                                    max_reconnect_attempts=-1, reconnect_time_wait=0.2)  # fmt: skip
        try:
            info = await ops_nc.jetstream().stream_info("CHECKIN")
            assert info.config.num_replicas == 3 and len(info.cluster.replicas) == 2
            leader = info.cluster.leader
            durable = consumer_name("recommender", FILTER)
            sub = await nc.jetstream().pull_subscribe(FILTER, durable=durable, stream="CHECKIN")
            sent = [str(uuid.uuid4()) for _ in range(EVENTS)]
            applied: list[str] = []
            stopped = ""
            for i, event_id in enumerate(sent):
                if i == STOP_AFTER:
                    node = next(n for n in cluster if n.extra_args[1] == leader)
                    node.stop()  # the stream's leader, mid-stream
                    stopped = leader
                data = json.dumps({"event_id": event_id}).encode()
                await publish_with_retry(producer, SUBJECT, data, event_id)
                if i == STOP_AFTER + 5:  # and a message already sent once more (a relay retry)
                    await publish_with_retry(producer, SUBJECT, data, sent[STOP_AFTER - 1])
            seen: set[str] = set()
            deadline = asyncio.get_running_loop().time() + 30
            while len(seen) < EVENTS and asyncio.get_running_loop().time() < deadline:
                try:
                    msgs = await sub.fetch(20, timeout=1)
                except (NatsTimeout, APIError):
                    continue
                for msg in msgs:
                    event_id = json.loads(msg.data)["event_id"]
                    if event_id not in seen:  # the consumer's idempotency record, by event id
                        seen.add(event_id)
                        applied.append(event_id)
                    await msg.ack_sync()
            info = await ops_nc.jetstream().stream_info("CHECKIN")
            assert info.state.messages == EVENTS  # the retry was de-duplicated by its message id
            return applied, stopped
        finally:
            await producer.close()
            await nc.close()
            await ops_nc.close()

    applied, stopped = asyncio.run(body())
    assert sorted(applied) == sorted(set(applied)) and len(applied) == EVENTS

    # The stopped node returns and catches up: every replica current, no lag.
    node = next(n for n in cluster if n.extra_args[1] == stopped)
    node.start(timeout=30)

    async def caught_up() -> None:
        nc = await nats.connect(**{**cluster[0].connect_kwargs("ops"), "servers": urls(cluster).split(",")})
        try:
            for _ in range(200):
                info = await nc.jetstream().stream_info("CHECKIN")
                peers = {info.cluster.leader: (True, 0)} | {
                    r.name: (r.current, r.lag or 0) for r in info.cluster.replicas
                }
                if peers.get(stopped) == (True, 0) and len(peers) == 3 and info.state.messages == EVENTS:
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"{stopped} did not catch up: {peers}")
        finally:
            await nc.close()

    asyncio.run(caught_up())
