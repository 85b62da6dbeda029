"""Revoke first (services/consent/revocation.py), over the real platform: every gate denies a
withdrawal before it commits; purpose-only data goes only once it has committed; a withdrawal
that fails puts the consent back; a stale compare-and-set writes nothing; a key left
``withdrawing`` is restored by the sweep."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from services.checkin.models import NudgeSchedule
from services.consent.revocation import REVOCATIONS_KEY, Revocations
from services.consent.writer import WRITER_KEY
from shared.consent_gate import kv_key, kv_value
from shared.events.consent import Purpose
from shared.telemetry import REGISTRY
from shared.topology import KV_BUCKET
from tests.consent.conftest import Platform, new_sub, wait_until
from tests.consent.test_consent_flow import grant, state_of

NUDGE = {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris"}


def revocations(platform: Platform) -> Revocations:
    return platform.consent.runtime.extras[REVOCATIONS_KEY]


def on_service_loop(platform: Platform, coro: Any) -> Any:
    loop = revocations(platform).loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(coro, loop).result(15)


def kv_state(platform: Platform, subject: str, purpose: str) -> str:
    async def read(js: Any) -> str:
        kv = await js.key_value(KV_BUCKET)
        return str(json.loads((await kv.get(kv_key(subject, purpose))).value)["state"])

    return str(platform.ops(read))


def granted_everywhere(platform: Platform, sub: str, purpose: str = "checkin") -> tuple[int, int]:
    """Grant, then wait until every gate allows and the consent service's own view has the grant."""
    subject = platform.pseudonym(sub)
    grant(platform, sub, purpose)
    return wait_until(
        lambda: (
            all(platform.gates(subject, purpose).values())
            and revocations(platform).view.granted_revision(subject, purpose)
        )
    )


def with_a_reminder(platform: Platform) -> tuple[str, str]:
    """A new employee who consented to check-ins and set a weekly reminder (purpose-only data)."""
    sub = new_sub()
    granted_everywhere(platform, sub)
    r = platform.services["checkin"].client.put("/v1/me/nudges", json=NUDGE, headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    return sub, platform.pseudonym(sub)


def nudge_exists(platform: Platform, subject: str) -> bool:
    with Session(platform.services["checkin"].runtime.engine) as session:
        return session.get(NudgeSchedule, subject) is not None


def early(outcome: str) -> float:
    return REGISTRY.get_sample_value("kinwell_consent_early_revocations_total", {"outcome": outcome}) or 0.0


@contextmanager
def writer_stalled(platform: Platform) -> Iterator[None]:
    """The database is slow: the consent writer's one thread is busy until the block ends."""
    release = threading.Event()
    busy = platform.consent.runtime.extras[WRITER_KEY]._executor.submit(release.wait, 30)
    try:
        yield
    finally:
        release.set()
        busy.result(5)


@contextmanager
def history_inserts_fail(platform: Platform) -> Iterator[None]:
    """A real database fault: every insert into consent_history is refused by a trigger."""
    engine = platform.consent.runtime.engine
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER kinwell_test_fault BEFORE INSERT ON consent_history "
            "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        ]
        drop = ["DROP TRIGGER kinwell_test_fault"]
    else:
        create = [
            "CREATE OR REPLACE FUNCTION kinwell_test_fault() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER kinwell_test_fault BEFORE INSERT ON consent_history "
            "FOR EACH ROW EXECUTE FUNCTION kinwell_test_fault()",
        ]
        drop = ["DROP TRIGGER kinwell_test_fault ON consent_history", "DROP FUNCTION kinwell_test_fault()"]
    with engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))


def test_every_gate_denies_before_the_withdrawal_commits_and_data_goes_only_after(platform):
    sub, subject = with_a_reminder(platform)
    checkin = platform.services["checkin"]
    applied = early("applied")

    with ThreadPoolExecutor(1) as pool:
        with writer_stalled(platform):
            withdrawal = pool.submit(
                platform.consent.client.delete, "/v1/me/consents/checkin", headers=platform.auth(sub)
            )
            wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
            time.sleep(0.3)  # room for a revocation listener, were one told
            assert not withdrawal.done()  # denied everywhere, and not yet committed
            assert nudge_exists(platform, subject)  # purpose-only data waits for the commit
            assert state_of(platform, sub, "checkin")["state"] == "granted"  # what the database holds
            assert kv_state(platform, subject, "checkin") == "withdrawing"
            assert checkin.client.put("/v1/me/nudges", json=NUDGE, headers=platform.auth(sub)).status_code == 403
        r = withdrawal.result(15)

    assert r.status_code == 200, r.text
    assert r.json()["state"] == "withdrawn"
    assert early("applied") == applied + 1
    wait_until(lambda: kv_state(platform, subject, "checkin") == "withdrawn")
    wait_until(lambda: not nudge_exists(platform, subject))  # once committed, the listener deletes it
    assert not any(platform.gates(subject, "checkin").values())


def test_a_withdrawal_that_fails_puts_the_consent_back_and_deletes_nothing(platform):
    sub, subject = with_a_reminder(platform)
    applied, restored = early("applied"), early("restored")

    with history_inserts_fail(platform):
        r = platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub))
        assert r.status_code >= 500 and r.headers["content-type"] == "application/problem+json"
        assert "injected" not in r.text  # no database text leaks into the answer
        wait_until(lambda: early("restored") == restored + 1)

    assert early("applied") == applied + 1  # it did deny first ...
    wait_until(lambda: all(platform.gates(subject, "checkin").values()))  # ... and was put back
    assert kv_state(platform, subject, "checkin") == "granted"
    assert state_of(platform, sub, "checkin")["state"] == "granted"
    assert nudge_exists(platform, subject)

    # The employee tries again, and now it commits.
    r = platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
    wait_until(lambda: not nudge_exists(platform, subject))


def test_an_early_put_on_a_stale_revision_writes_nothing_and_a_stuck_key_is_restored(platform):
    sub = new_sub()
    subject = platform.pseudonym(sub)
    key = kv_key(subject, "checkin")
    first, version = granted_everywhere(platform, sub)
    assert platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub)).status_code == 200
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
    second, _ = granted_everywhere(platform, sub)
    assert second > first

    async def put(revision: int) -> bool | None:
        outcome = await revocations(platform).put_withdrawing(key, revision, version)
        assert outcome is not None
        return await outcome

    # The grant it was made for is history: JetStream refuses it, nothing changes.
    assert on_service_loop(platform, put(first)) is False
    assert all(platform.gates(subject, "checkin").values())
    assert revocations(platform).view.granted_revision(subject, "checkin") == (second, version)

    # On the current revision it lands; restored from the database, the grant is back.
    assert on_service_loop(platform, put(second)) is True
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
    on_service_loop(platform, revocations(platform).restore(subject, Purpose.checkin))
    wait_until(lambda: all(platform.gates(subject, "checkin").values()))

    # A key left withdrawing (the consent service stopped between its early put and its commit)
    # is put back by the sweep (revocation_stale_seconds is 0.5 s here).
    async def stuck(js: Any) -> None:
        kv = await js.key_value(KV_BUCKET)
        await kv.put(key, kv_value("withdrawing", version, "t"))

    swept = early("swept")
    platform.ops(stuck)
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
    wait_until(lambda: all(platform.gates(subject, "checkin").values()), timeout=10)
    assert early("swept") == swept + 1
    assert kv_state(platform, subject, "checkin") == "granted"
    assert state_of(platform, sub, "checkin")["state"] == "granted"
