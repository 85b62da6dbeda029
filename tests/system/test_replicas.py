"""Two replicas of a service on one PostgreSQL database and one NATS, sharing their durable
consumers (as on Kubernetes): check-in applies every erasure request once although a replica
stops mid-stream; consent keeps its KV bucket equal to its database while both replicas race."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from sqlmodel import Session, select

from services.consent.consents.models import Consent
from shared.bus import Bus
from shared.bus.outbox import pending_count
from shared.consent_gate import kv_key
from shared.crypto import pseudonym
from shared.events.subject import ErasureRequested
from shared.natsserver import NatsServer
from shared.topology import KV_BUCKET
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


def kv_states(server: NatsServer, keys: list[str]) -> dict[str, str | None]:
    async def body() -> dict[str, str | None]:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            kv = await nc.jetstream().key_value(KV_BUCKET)
            out: dict[str, str | None] = {}
            for key in keys:
                try:
                    entry = await kv.get(key)
                    out[key] = json.loads(entry.value or b"{}").get("state")
                except nats.js.errors.KeyNotFoundError:
                    out[key] = None
            return out
        finally:
            await nc.close()

    return asyncio.run(body())


def test_two_consent_replicas_keep_the_kv_bucket_equal_to_the_database(
    start_service: Callable[..., Any],
    service_nats: NatsServer,
    make_db_url: Callable[[str], str],
    platform_settings,
    token: Callable[..., str],
):
    database = make_db_url("consent")
    replicas = [start_service("consent", database_url=database), start_service("consent", database_url=database)]
    policy = replicas[0].client.get("/v1/policy").json()
    purpose = "checkin"
    version = next(p["version"] for p in policy["purposes"] if p["purpose"] == purpose)
    subs = [f"E{uuid.uuid4().hex[:8]}" for _ in range(6)]

    def flip(sub: str, rounds: int) -> None:
        # Grants and withdrawals of one subject alternate between the two replicas, racing the puts.
        headers = {"Authorization": f"Bearer {token(sub)}"}
        for i in range(rounds):
            client = replicas[i % 2].client
            if i % 2 == 0:
                r = client.put(f"/v1/me/consents/{purpose}", json={"policy_version": version}, headers=headers)
            else:
                r = client.delete(f"/v1/me/consents/{purpose}", headers=headers)
            assert r.status_code in (200, 204), r.text

    with ThreadPoolExecutor(len(subs)) as pool:
        list(pool.map(lambda s: flip(s[1], 5 + s[0] % 2), enumerate(subs)))  # ends granted or withdrawn

    key = platform_settings.secret("pseudonym_key")
    pseudonyms = {sub: pseudonym(key, platform_settings.tenant, sub) for sub in subs}
    engine = replicas[0].runtime.engine
    with Session(engine) as session:
        rows = {c.pseudonym: c.state for c in session.exec(select(Consent).where(Consent.purpose == purpose))}
    database_states = {kv_key(p, purpose): rows[p] for p in pseudonyms.values()}
    assert set(database_states.values()) == {"granted", "withdrawn"}
    deadline = time.monotonic() + 20
    while (kv := kv_states(service_nats, list(database_states))) != database_states:
        assert time.monotonic() < deadline, (kv, database_states)
        time.sleep(0.1)
