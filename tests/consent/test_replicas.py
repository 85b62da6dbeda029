"""Issue 12 item 3: two consent replicas on one database, the relay of one delayed, interleaved
grants and withdrawals of the same subjects: the bucket must end equal to the database.

Replica A reaches nats-server through a loopback proxy that holds its traffic back (a slow link);
replica B is direct. Each change is sent as soon as the one before it has committed (read back
through B), alternating replicas, so A's puts are still on the wire when B's later ones land.
Without versioned compare-and-set puts, A's late grant overwrites B's withdrawal for good.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
from sqlmodel import Session, select

from services.consent.consents.models import Consent
from shared.consent_gate import kv_key
from shared.topology import KV_BUCKET
from tests.netdelay import delayed
from tests.servicefixtures import bearer

SUBJECTS = 8
DELAY_S = 0.25
ENDS_GRANTED = ["grant", "withdraw", "grant", "withdraw", "grant"]
ENDS_WITHDRAWN = ["grant", "withdraw", "grant", "withdraw"]


def _database(replica: Any) -> dict[str, str]:
    with Session(replica.runtime.engine) as session:
        return {kv_key(c.pseudonym, c.purpose): c.state for c in session.exec(select(Consent))}


def _bucket(server: Any, keys: list[str]) -> dict[str, str]:
    async def read() -> dict[str, str]:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            kv = await nc.jetstream().key_value(KV_BUCKET)
            found = {}
            for key in keys:
                try:
                    found[key] = json.loads((await kv.get(key)).value)["state"]
                except nats.js.errors.KeyNotFoundError:
                    found[key] = "missing"
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def _state(replica: Any, headers: dict[str, str]) -> str:
    r = replica.client.get("/v1/me/consents", headers=headers)
    return str(next(c for c in r.json()["consents"] if c["purpose"] == "checkin")["state"])


def _run_changes(a: Any, b: Any, headers: dict[str, str], changes: list[str]) -> list[int]:
    """Each change on the other replica than the one before, sent once the one before has
    committed (not once it was answered: A answers late)."""
    statuses = []
    with ThreadPoolExecutor(len(changes)) as pool:
        futures = []
        for i, change in enumerate(changes):
            replica = a if i % 2 == 0 else b
            if change == "grant":
                call = pool.submit(
                    replica.client.put, "/v1/me/consents/checkin", json={"policy_version": 1}, headers=headers
                )
            else:
                call = pool.submit(replica.client.delete, "/v1/me/consents/checkin", headers=headers)
            futures.append(call)
            want = "granted" if change == "grant" else "withdrawn"
            deadline = time.monotonic() + 15
            while _state(b, headers) != want:
                assert time.monotonic() < deadline, "a change never committed"
                time.sleep(0.005)
        statuses = [f.result(30).status_code for f in futures]
    return statuses


def test_the_bucket_ends_equal_to_the_database_with_two_replicas_one_relay_delayed(
    start_service, service_nats, platform_settings, token
):
    b = start_service("consent")
    with delayed(service_nats.url, DELAY_S) as slow_url:
        slow = platform_settings.model_copy(update={"nats_url": slow_url})
        a = start_service("consent", database_url=b.settings.database_url, platform=slow)
        plans = [ENDS_GRANTED if i % 2 == 0 else ENDS_WITHDRAWN for i in range(SUBJECTS)]
        with ThreadPoolExecutor(SUBJECTS) as pool:
            outcomes = list(
                pool.map(
                    lambda plan: _run_changes(a, b, bearer(token(f"E-{uuid.uuid4().hex[:12]}")), plan),
                    plans,
                )
            )
        # Every change committed; one still unconfirmed when answered is a 503 change-pending.
        assert all(status in (200, 503) for statuses in outcomes for status in statuses), outcomes

        database = _database(b)
        assert len(database) == SUBJECTS
        assert sorted(database.values()) == sorted("granted" if p is ENDS_GRANTED else "withdrawn" for p in plans)
        deadline = time.monotonic() + 10
        while (bucket := _bucket(service_nats, list(database))) != database and time.monotonic() < deadline:
            time.sleep(0.2)
        wrong = {key: (bucket[key], state) for key, state in database.items() if bucket[key] != state}
        assert not wrong, f"{len(wrong)} of {SUBJECTS} keys differ from the database (bucket, database): {wrong}"
