"""Outbound webhooks mounted in the real services: aggregator, escalation and check-in (nudges).

Each test runs the service under uvicorn with its own NATS and database, and a loopback receiver
that verifies every delivery with the ``standardwebhooks`` package and de-duplicates on webhook-id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select
from standardwebhooks import Webhook

from services.aggregator.notify import ROLLUP_PUBLISHED
from services.aggregator.notify import notify as aggregator_notify
from services.checkin.nudges.models import NudgeSchedule
from services.escalation.notify import PAGE_TRIGGERED
from services.escalation.notify import notify as escalation_notify
from shared.webhooks import WebhookDelivery
from tests.checkin.conftest import FAST, Harness, new_sub
from tests.integrations.conftest import loopback_settings
from tests.integrations.loopback import Hit, wait_until
from tests.servicefixtures import RunningService, bearer

PROBLEM = "application/problem+json"


def problem_code(r: Any) -> str:
    return str(r.json()["type"]).rsplit("/", 1)[-1]


def admin(token: Any) -> dict[str, str]:
    return bearer(token("admin-1", "admin"))


def subscribe(svc: RunningService, token: Any, url: str, *types: str) -> dict[str, Any]:
    r = svc.client.post("/v1/subscriptions", json={"url": url, "event_types": list(types)}, headers=admin(token))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def verified(hits: list[Hit], secret: str) -> dict[str, Any]:
    """What a careful receiver keeps: each hit verified, then one payload per webhook-id."""
    kept: dict[str, Any] = {}
    for hit in hits:
        payload = Webhook(secret).verify(hit.body, hit.headers)  # raises on a bad signature
        kept.setdefault(hit.headers["webhook-id"], payload)
    return kept


def deliveries(svc: RunningService, token: Any, sub_id: str) -> list[dict[str, Any]]:
    r = svc.client.get(f"/v1/subscriptions/{sub_id}/deliveries", headers=admin(token))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_aggregator_events_reach_a_flaky_receiver_exactly_once_in_effect(start_service, token, receiver):
    svc = start_service("aggregator", webhooks=loopback_settings())
    # A 500, then an answer slower than the sender's 2 s timeout (the receiver did get it), then 200s.
    sub = subscribe(svc, token, receiver.script("/hr", 500, ("sleep", 2.5)), ROLLUP_PUBLISHED)
    payloads = [{"rollup_id": f"r-{i}", "org_unit": "eng", "period": "2026-W09"} for i in range(3)]
    with Session(svc.runtime.engine) as session:
        ids = [aggregator_notify(session, ROLLUP_PUBLISHED, p)[0] for p in payloads]
        session.commit()
    wait_until(lambda: all(d["status"] == "delivered" for d in deliveries(svc, token, sub["id"])), timeout=20)
    hits = receiver.hits_on("/hr")
    assert len(hits) >= 5  # two of the three were attempted twice
    kept = verified(hits, sub["secret"])
    assert set(kept) == set(ids)
    assert sorted(p["data"]["rollup_id"] for p in kept.values()) == ["r-0", "r-1", "r-2"]
    assert {p["type"] for p in kept.values()} == {ROLLUP_PUBLISHED}
    log = deliveries(svc, token, sub["id"])
    assert sum(len(d["attempt_log"]) for d in log) == len(hits)
    with Session(svc.runtime.engine) as session, pytest.raises(ValueError, match="not an event type"):
        aggregator_notify(session, "escalation.page.triggered", {})


def test_a_test_ping_is_signed_and_goes_to_that_subscription_only(start_service, token, receiver):
    svc = start_service("escalation", webhooks=loopback_settings())
    pinged = subscribe(svc, token, receiver.url("/pager"), PAGE_TRIGGERED)
    other = subscribe(svc, token, receiver.url("/other"), "*")
    r = svc.client.post(f"/v1/subscriptions/{pinged['id']}/test", headers=admin(token))
    assert r.status_code == 202 and r.json()["event_type"] == "webhook.test"
    (hit,) = wait_until(lambda: receiver.hits_on("/pager"))
    body = Webhook(pinged["secret"]).verify(hit.body, hit.headers)
    assert body["type"] == "webhook.test" and body["data"] == {"subscription_id": pinged["id"]}
    assert hit.headers["webhook-id"] == r.json()["id"]
    with pytest.raises(Exception):  # noqa: B017, PT011 - the other secret does not verify it
        Webhook(other["secret"]).verify(hit.body, hit.headers)
    assert receiver.hits_on("/other") == []
    assert svc.client.post("/v1/subscriptions/sub_nope/test", headers=admin(token)).status_code == 404


def test_410_disables_the_endpoint_and_erasure_deletes_queued_pages(
    service_nats, start_service, platform_settings, token, receiver
):
    # The first attempt only; the next one would be in a minute.
    svc = start_service("escalation", webhooks=loopback_settings(retry_schedule=[0, 60]))
    gone = subscribe(svc, token, receiver.script("/gone", then=410), PAGE_TRIGGERED)
    with Session(svc.runtime.engine) as session:
        (first,) = escalation_notify(session, PAGE_TRIGGERED, {"case_id": "c-1", "severity": "high"})
        session.commit()
    wait_until(
        lambda: svc.client.get(f"/v1/subscriptions/{gone['id']}", headers=admin(token)).json()["enabled"] is False
    )
    read = svc.client.get(f"/v1/subscriptions/{gone['id']}", headers=admin(token)).json()
    assert read["disabled_reason"] == "gone"
    (dead,) = svc.client.get("/v1/webhooks/dead-letters", headers=admin(token)).json()
    assert dead["id"] == first and dead["status"] == "failed" and dead["last_status_code"] == 410
    replay = svc.client.post(f"/v1/webhooks/dead-letters/{first}/replay", headers=admin(token))
    assert replay.status_code == 409 and replay.headers["content-type"] == PROBLEM
    with Session(svc.runtime.engine) as session:
        assert escalation_notify(session, PAGE_TRIGGERED, {"case_id": "c-2"}) == []  # nobody enabled wants it
        session.commit()
    assert len(receiver.hits_on("/gone")) == 1
    r = svc.client.post(f"/v1/subscriptions/{gone['id']}/test", headers=admin(token))
    assert r.status_code == 409 and problem_code(r) == "subscription-disabled"

    # A page queued about a subject, waiting for its retry, is deleted by that subject's erasure.
    flaky = subscribe(svc, token, receiver.script("/flaky", then=500), PAGE_TRIGGERED)
    h = Harness(service_nats, platform_settings, svc, token)
    employee = new_sub()
    with Session(svc.runtime.engine) as session:
        escalation_notify(session, PAGE_TRIGGERED, {"case_id": "c-3"}, subject=h.pseudonym(employee))
        session.commit()
    wait_until(lambda: [d for d in deliveries(svc, token, flaky["id"]) if d["attempts"] == 1])
    h.request_erasure(employee)
    wait_until(lambda: deliveries(svc, token, flaky["id"]) == [], timeout=15)
    assert len(receiver.hits_on("/flaky")) == 1


@pytest.mark.parametrize("name", ["aggregator", "escalation"])
def test_the_admin_api_is_for_admins_and_bad_input_is_problem_json(name, start_service, token, receiver):
    svc = start_service(name, webhooks=loopback_settings())
    employee = bearer(token("e-1", "employee"))
    assert svc.client.get("/v1/subscriptions").status_code == 401
    for method, path in (
        ("GET", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions"),
        ("DELETE", "/v1/subscriptions/sub_x"),
        ("POST", "/v1/subscriptions/sub_x/test"),
        ("GET", "/v1/webhooks/dead-letters"),
    ):
        r = svc.client.request(method, path, headers=employee, json={"url": receiver.url("/x"), "event_types": ["*"]})
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, (method, path)
    declared = ROLLUP_PUBLISHED if name == "aggregator" else PAGE_TRIGGERED
    foreign = PAGE_TRIGGERED if name == "aggregator" else ROLLUP_PUBLISHED
    for body, status, code in (
        ({"url": receiver.url("/x"), "event_types": [foreign]}, 422, "unknown-event-type"),
        ({"url": receiver.url("/x"), "event_types": ["checkin.nudge.due"]}, 422, "unknown-event-type"),
        ({"url": receiver.url("/x"), "event_types": [declared], "secret": "mine"}, 422, None),
        ({"url": "ftp://example.com/x", "event_types": [declared]}, 422, "webhook-target-refused"),
        ({"event_types": [declared]}, 422, None),
    ):
        r = svc.client.post("/v1/subscriptions", json=body, headers=admin(token))
        assert r.status_code == status and r.headers["content-type"] == PROBLEM, (body, r.text)
        if code is not None:
            assert problem_code(r) == code
    r = svc.client.post(
        "/v1/subscriptions", content=b"{not json", headers=admin(token) | {"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM
    assert svc.client.delete("/v1/subscriptions/sub_nope", headers=admin(token)).status_code == 404
    assert svc.client.get("/v1/subscriptions", headers=admin(token)).json() == []  # nothing was created


def test_targets_resolving_to_private_addresses_are_refused_unless_allowed(start_service, token, receiver):
    strict = start_service("aggregator", webhooks=loopback_settings(allow_networks=[]))
    port = receiver.served.port  # type: ignore[union-attr]
    for url in (f"http://localhost:{port}/x", f"http://127.0.0.1:{port}/x", "http://10.1.2.3/x", "http://[::1]/x"):
        r = strict.client.post(
            "/v1/subscriptions", json={"url": url, "event_types": [ROLLUP_PUBLISHED]}, headers=admin(token)
        )
        assert r.status_code == 422 and problem_code(r) == "webhook-target-refused", url
        assert str(port) not in r.text and "10.1.2.3" not in r.text  # the URL is never echoed
    assert strict.client.get("/v1/subscriptions", headers=admin(token)).json() == []
    allowed = start_service("escalation", webhooks=loopback_settings())  # 127.0.0.0/8 allowed explicitly
    sub = subscribe(allowed, token, f"http://localhost:{port}/ok", PAGE_TRIGGERED)
    assert sub["enabled"] is True


# --- check-in nudges ------------------------------------------------------------------------------


def _make_due(svc: RunningService, *pseudonyms: str) -> None:
    with Session(svc.runtime.engine) as session:
        session.exec(  # type: ignore[call-overload]
            update(NudgeSchedule)
            .where(col(NudgeSchedule.pseudonym).in_(pseudonyms))
            .values(next_due=datetime.now(UTC) - timedelta(minutes=1))
        )
        session.commit()


def _queued_about(svc: RunningService, pseudonym: str) -> list[WebhookDelivery]:
    with Session(svc.runtime.engine) as session:
        return list(session.exec(select(WebhookDelivery).where(col(WebhookDelivery.subject) == pseudonym)))


def test_nudges_go_as_webhooks_by_handle_and_never_after_withdrawal_or_erasure(
    service_nats, start_service, platform_settings, token, receiver
):
    # The first attempt only, the next one a minute later: queued retries are what withdrawal must stop.
    settings = loopback_settings(retry_schedule=[0, 60])
    svc = start_service("checkin", **FAST, webhooks=settings)
    h = Harness(service_nats, platform_settings, svc, token)
    chat = subscribe(svc, token, receiver.script("/chat"), "checkin.nudge.due")
    subscribe(svc, token, receiver.url("/everything"), "*")  # a wildcard never gets subject-linked nudges
    stays, leaves, erased = new_sub(), new_sub(), new_sub()
    handles = {}
    for sub in (stays, leaves, erased):
        h.grant(sub, "checkin")
        put = {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris", "lang": "fr"}
        assert svc.client.put("/v1/me/nudges", json=put, headers=h.auth(sub)).status_code == 200
        r = svc.client.get("/v1/me/nudges/handle", headers=h.auth(sub))
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        handles[sub] = r.json()["handle"]
    assert len(set(handles.values())) == 3
    assert svc.client.get("/v1/me/nudges/handle").status_code == 401

    _make_due(svc, h.pseudonym(stays))
    (hit,) = wait_until(lambda: receiver.hits_on("/chat"))
    body = Webhook(chat["secret"]).verify(hit.body, hit.headers)
    assert body["type"] == "checkin.nudge.due"
    assert set(body["data"]) == {"handle", "lang", "due_at"}
    assert body["data"]["handle"] == handles[stays] and body["data"]["lang"] == "fr"
    wire = hit.body.decode() + json.dumps(hit.headers)
    assert stays not in wire and h.pseudonym(stays) not in wire  # neither the employee id nor the pseudonym
    h.wait_stream("CHECKIN", "checkin.nudge.due.v1")  # the bus event is still produced

    # The receiver goes down: the next two nudges fail their first attempt and wait for a retry.
    receiver.script("/chat", then=500)
    _make_due(svc, h.pseudonym(leaves), h.pseudonym(erased))
    wait_until(lambda: len(receiver.hits_on("/chat")) == 3)
    wait_until(lambda: all([d.attempts for d in _queued_about(svc, h.pseudonym(s))] == [1] for s in (leaves, erased)))
    h.withdraw(leaves, "checkin")
    h.request_erasure(erased)
    wait_until(lambda: not _queued_about(svc, h.pseudonym(leaves)) and not _queued_about(svc, h.pseudonym(erased)))
    assert svc.client.get("/v1/webhooks/dead-letters", headers=admin(token)).json() == []  # nothing to replay
    # Due again: nothing is produced for either (their schedules went with the consent / the data).
    _make_due(svc, h.pseudonym(leaves), h.pseudonym(erased))
    receiver.script("/chat")  # back up
    _make_due(svc, h.pseudonym(stays))
    wait_until(lambda: len(receiver.hits_on("/chat")) == 4)
    sent_to = {json.loads(x.body)["data"]["handle"] for x in receiver.hits_on("/chat")[3:]}
    assert sent_to == {handles[stays]}
    assert receiver.hits_on("/everything") == []
    assert not _queued_about(svc, h.pseudonym(leaves)) and not _queued_about(svc, h.pseudonym(erased))
