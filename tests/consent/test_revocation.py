"""Withdrawal over the real platform: its 200 comes once the bucket holds it, so every gate
denies from then on; purpose-only data goes once it has committed; a withdrawal that fails
changes nothing. (Replaces the tests of the early ``withdrawing`` put, removed with it: the
guarantee is now the answer itself, whatever the timing of the grant before it.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from services.checkin.nudges.models import NudgeSchedule
from shared.consent_gate import kv_key
from shared.crypto import pseudonym
from shared.topology import KV_BUCKET
from tests.consent.conftest import Platform, new_sub, wait_until
from tests.consent.test_consent_flow import grant, state_of
from tests.consent.test_replicas import _bucket
from tests.netdelay import delayed
from tests.servicefixtures import bearer

NUDGE = {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris"}
WEEKLY_OK = {"who5_1": 4, "who5_2": 4, "who5_3": 3, "who5_4": 4, "who5_5": 4, "mood": 4}


def kv_state(platform: Platform, subject: str, purpose: str) -> str:
    async def read(js: Any) -> str:
        kv = await js.key_value(KV_BUCKET)
        return str(json.loads((await kv.get(kv_key(subject, purpose))).value)["state"])

    return str(platform.ops(read))


def with_a_reminder(platform: Platform) -> tuple[str, str]:
    """A new employee who consented to check-ins and set a weekly reminder (purpose-only data)."""
    sub = new_sub()
    subject = platform.pseudonym(sub)
    grant(platform, sub, "checkin")
    wait_until(lambda: all(platform.gates(subject, "checkin").values()))
    r = platform.services["checkin"].client.put("/v1/me/nudges", json=NUDGE, headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    return sub, subject


def nudge_exists(platform: Platform, subject: str) -> bool:
    with Session(platform.services["checkin"].runtime.engine) as session:
        return session.get(NudgeSchedule, subject) is not None


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


def test_a_withdrawal_is_answered_only_once_the_bucket_holds_it(start_service, service_nats, platform_settings, token):
    """The consent service reaches NATS over a slow link (0.3 s): its 200 still means withdrawn.
    Before, the answer followed the commit and the put was still on the wire (early put or not)."""
    checkin = start_service("checkin")
    with delayed(service_nats.url, 0.3) as slow_url:
        consent = start_service("consent", platform=platform_settings.model_copy(update={"nats_url": slow_url}))
        sub = f"E-{uuid.uuid4().hex[:12]}"
        headers = bearer(token(sub))
        key = kv_key(pseudonym(platform_settings.secret("pseudonym_key"), platform_settings.tenant, sub), "checkin")
        r = consent.client.put("/v1/me/consents/checkin", json={"policy_version": 1}, headers=headers)
        assert r.status_code == 200, r.text
        assert _bucket(service_nats, [key]) == {key: "granted"}  # a grant, too, once stored
        started = time.monotonic()
        r = consent.client.delete("/v1/me/consents/checkin", headers=headers)
        assert r.status_code == 200, r.text
        assert _bucket(service_nats, [key]) == {key: "withdrawn"}
        assert time.monotonic() - started >= 0.3  # it did wait for the slow link
        posted = checkin.client.post("/v1/checkins", json={"answers": WEEKLY_OK}, headers=headers)
        assert posted.status_code == 403, posted.text


def test_a_withdrawal_that_fails_changes_nothing(platform):
    sub, subject = with_a_reminder(platform)

    with history_inserts_fail(platform):
        r = platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub))
        assert r.status_code >= 500 and r.headers["content-type"] == "application/problem+json"
        assert "injected" not in r.text  # no database text leaks into the answer

    assert all(platform.gates(subject, "checkin").values())
    assert kv_state(platform, subject, "checkin") == "granted"
    assert state_of(platform, sub, "checkin")["state"] == "granted"
    assert nudge_exists(platform, subject)

    # The employee tries again, and now it commits: answered once every gate can only deny.
    r = platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    assert kv_state(platform, subject, "checkin") == "withdrawn"
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))
    wait_until(lambda: not nudge_exists(platform, subject))
