"""Durable timers: a SIGKILL between two ladder steps loses nothing and pages each step exactly
once; two replicas on one database page each step once. Real processes, real NATS, real database
(SQLite, or PostgreSQL with KINWELL_TEST_DATABASE_URL), a loopback pager."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
from standardwebhooks import Webhook

from tests.escalation.conftest import (
    FAST_POLICY,
    Escalation,
    escalation_overrides,
    flag,
    new_sub,
    publish_as,
    put_consents,
)
from tests.escalation.process import ServiceProcess
from tests.integrations.loopback import wait_until
from tests.servicefixtures import bearer

POLICY = {
    **FAST_POLICY,
    "rules": [{**r, "ack_delay_seconds": {"imminent": 4.0, "high": 60, "moderate": 600}} for r in FAST_POLICY["rules"]],
}


def _verified(receiver, secret: str, path: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every delivery verified; duplicates by webhook-id kept (we count them)."""
    return [
        Webhook(secret).verify(h.body, h.headers) | {"_id": h.headers["webhook-id"]} for h in receiver.hits_on(path)
    ]


def _setup(url: str, token, receiver) -> str:  # type: ignore[no-untyped-def]
    admin = bearer(token("ops-1", "admin"))
    assert httpx.put(url + "/v1/policies", json=POLICY, headers=admin).status_code == 200
    body = {"url": receiver.url("/pager"), "event_types": ["escalation.page.triggered", "escalation.page.external"]}
    r = httpx.post(url + "/v1/subscriptions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


def test_sigkill_between_rules_loses_nothing_and_pages_each_rule_once(
    service_nats, platform_settings, make_db_url, token, receiver, tmp_path
):
    url = make_db_url("escalation")
    proc = ServiceProcess(service_nats, platform_settings, url, tmp_path / "svc.log").start()
    try:
        secret = _setup(proc.url, token, receiver)
        h = Escalation(service_nats, platform_settings, None, receiver, token)  # type: ignore[arg-type]
        sub = new_sub()
        put_consents(service_nats, {h.pseudonym(sub): "granted"})
        time.sleep(0.5)  # the gate has read it (a flag seen before would only be put back, not lost)
        publish_as(service_nats, "checkin", flag(h.pseudonym(sub), "critical"))
        first = wait_until(lambda: _verified(receiver, secret, "/pager"), timeout=20)
        assert first[0]["data"]["rule"] == 1
        proc.kill()  # rule 2 is due 4 s after opening; the process is gone
        killed_at = time.monotonic()
        time.sleep(5)  # rule 2's time passes while nobody runs
        assert [p["data"]["rule"] for p in _verified(receiver, secret, "/pager")] == [1]
        proc = ServiceProcess(service_nats, platform_settings, url, tmp_path / "svc2.log").start()
        wait_until(lambda: len({p["_id"] for p in _verified(receiver, secret, "/pager")}) >= 3, timeout=20)
        time.sleep(1.0)  # anything duplicated would have arrived by now
        pages = _verified(receiver, secret, "/pager")
        keys = Counter(p["data"]["page_key"] for p in pages)
        assert sorted(keys.values()) == [1, 1, 1], keys  # rule 1, rule 2, crisis service: once each
        assert [p["type"].rsplit(".", 1)[-1] for p in pages] == ["triggered", "triggered", "external"]
        assert time.monotonic() - killed_at < 30
    finally:
        proc.stop()


def test_two_replicas_on_one_database_page_each_step_once(
    start_service, service_nats, platform_settings, make_db_url, token, receiver
):
    url = make_db_url("escalation")
    first = start_service("escalation", **escalation_overrides(database_url=url))
    second = start_service("escalation", **escalation_overrides(database_url=url))
    secret = _setup(first.url, token, receiver)
    h = Escalation(service_nats, platform_settings, first, receiver, token)
    subs = [new_sub() for _ in range(8)]
    put_consents(service_nats, {h.pseudonym(s): "granted" for s in subs})
    for svc in (first, second):
        wait_until(lambda svc=svc: all(svc.runtime.gate.allowed(h.pseudonym(s), "escalation") for s in subs))
    publish_as(service_nats, "checkin", *(flag(h.pseudonym(s), "critical") for s in subs))
    expected = len(subs) * 3  # rule 1, rule 2, crisis service
    wait_until(lambda: len({p["_id"] for p in _verified(receiver, secret, "/pager")}) >= expected, timeout=40)
    time.sleep(1.0)
    keys = Counter(p["data"]["page_key"] for p in _verified(receiver, secret, "/pager"))
    assert len(keys) == expected and set(keys.values()) == {1}, keys
    fired = [svc.runtime for svc in (first, second)]
    assert all(rt.bus_ready for rt in fired)
