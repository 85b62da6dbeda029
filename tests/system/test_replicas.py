"""Two replicas of the check-in service on one PostgreSQL database and one NATS, sharing their
durable consumers (as on Kubernetes): erasure requests published while one replica is stopped
mid-stream are each applied and acknowledged exactly once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest

from shared.bus import Bus
from shared.bus.outbox import pending_count
from shared.crypto import pseudonym
from shared.events.subject import ErasureRequested
from shared.natsserver import NatsServer
from tests.dbfixtures import PG_URL

REQUESTS = 30

pytestmark = pytest.mark.skipif(not PG_URL, reason="replicas share one PostgreSQL (KINWELL_TEST_DATABASE_URL)")


async def publish_as_consent(server: NatsServer, events: list[ErasureRequested]) -> None:
    kw = server.connect_kwargs("consent")
    bus = Bus("consent", kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    try:
        for event in events:
            await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
    finally:
        await bus.close()


def erasure_acks(server: NatsServer) -> list[str]:
    async def body() -> list[str]:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            js = nc.jetstream()
            info = await js.stream_info("CHECKIN")
            out = []
            for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                msg = await js.get_msg("CHECKIN", seq)
                if msg.subject == "checkin.erasure.erased.v1":
                    out.append(json.loads(msg.data or b"{}")["request_id"])
            return out
        finally:
            await nc.close()

    return asyncio.run(body())


def test_two_checkin_replicas_apply_every_erasure_once(
    start_service: Callable[..., Any], service_nats: NatsServer, make_db_url: Callable[[str], str], platform_settings
):
    database = make_db_url("checkin")
    first = start_service("checkin", database_url=database)
    second = start_service("checkin", database_url=database)
    key = platform_settings.secret("pseudonym_key")
    events = [
        ErasureRequested(
            request_id=uuid.uuid4(),
            pseudonym=pseudonym(key, platform_settings.tenant, f"E{i}"),
            requested_at=datetime.now(UTC),
        )
        for i in range(REQUESTS)
    ]
    asyncio.run(publish_as_consent(service_nats, events[: REQUESTS // 2]))
    first.stop()  # a replica goes away mid-stream (a rollout, a node drain)
    asyncio.run(publish_as_consent(service_nats, events[REQUESTS // 2 :]))

    wanted = sorted(str(e.request_id) for e in events)
    deadline = time.monotonic() + 20
    while sorted(set(erasure_acks(service_nats))) != wanted:
        assert time.monotonic() < deadline, "not every erasure was acknowledged"
        time.sleep(0.1)
    while pending_count(second.runtime.engine):  # nothing left to publish: absence means absence
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sorted(erasure_acks(service_nats)) == wanted  # each exactly once
