"""The webhook admin API over HTTP: secrets shown once, admins only, problem+json on bad input."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from shared.auth import Role, dev_token
from shared.webhooks import WebhookAttempt, WebhookDelivery, purge_settled
from tests.integrations.conftest import EVENT
from tests.integrations.loopback import wait_until

PROBLEM = "application/problem+json"


def test_the_secret_is_answered_once_and_never_again(webhook_api, receiver):
    api = webhook_api(with_sender=False)
    r = api.client.post("/v1/subscriptions", json={"url": receiver.url("/x"), "event_types": [EVENT, EVENT]})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    created = r.json()
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32
    assert created["event_types"] == [EVENT] and created["enabled"] is True
    assert created["created_at"].endswith(("Z", "+00:00"))
    listed = api.client.get("/v1/subscriptions").json()
    one = api.client.get(f"/v1/subscriptions/{created['id']}").json()
    for body in (listed[0], one):
        assert "secret" not in body and created["secret"] not in str(body)
    assert {k: v for k, v in created.items() if k != "secret"} == one


def test_only_admins_may_manage_subscriptions(webhook_api, platform, receiver):
    api = webhook_api(with_sender=False)
    anonymous = api.client.get("/v1/subscriptions", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM
    employee = {"Authorization": "Bearer " + dev_token(platform, "e-1", [Role.employee])}
    for method, path in (("GET", "/v1/subscriptions"), ("GET", "/v1/webhooks/dead-letters")):
        r = api.client.request(method, path, headers=employee)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    r = api.client.post("/v1/subscriptions", json={"url": receiver.url("/x"), "event_types": [EVENT]}, headers=employee)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"url": "https://example.com/"}, 422),
        ({"url": "https://example.com/", "event_types": []}, 422),
        ({"url": "https://example.com/", "event_types": ["Not A Type"]}, 422),
        ({"url": "https://example.com/", "event_types": [EVENT], "secret": "mine"}, 422),
        ({"url": "x" * 3000, "event_types": [EVENT]}, 422),
        (b"{not json", 400),
        (b"x" * (70 * 1024), 413),
    ],
)
def test_bad_input_is_problem_json(webhook_api, body, status):
    api = webhook_api(with_sender=False)
    if isinstance(body, bytes):
        r = api.client.post("/v1/subscriptions", content=body, headers={"content-type": "application/json"})
    else:
        r = api.client.post("/v1/subscriptions", json=body)
    assert r.status_code == status and r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/subscriptions/sub_nope"),
        ("DELETE", "/v1/subscriptions/sub_nope"),
        ("GET", "/v1/subscriptions/sub_nope/deliveries"),
        ("POST", "/v1/webhooks/dead-letters/msg_nope/replay"),
    ],
)
def test_unknown_ids_are_404_problem_json(webhook_api, method, path):
    api = webhook_api(with_sender=False)
    r = api.client.request(method, path)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_bad_query_parameters_are_422(webhook_api, receiver):
    api = webhook_api(with_sender=False)
    sub = api.subscribe(receiver.url("/q"))
    for query in ("limit=0", "limit=1000", "status=lost"):
        r = api.client.get(f"/v1/subscriptions/{sub['id']}/deliveries?{query}")
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_event_types_can_be_restricted_to_what_the_service_sends(webhook_api, receiver):
    api = webhook_api(with_sender=False, event_types={EVENT})
    ok = api.client.post("/v1/subscriptions", json={"url": receiver.url("/r"), "event_types": [EVENT]})
    assert ok.status_code == 201
    bad = api.client.post("/v1/subscriptions", json={"url": receiver.url("/r"), "event_types": ["case.opened"]})
    assert bad.status_code == 422 and bad.json()["type"].endswith("/unknown-event-type")


def test_delivery_log_filters_and_delete_removes_everything(webhook_api, receiver):
    api = webhook_api()
    sub = api.subscribe(receiver.script("/log", 500, then=200))
    (first,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(first).status == "delivered")
    delivered = api.client.get(f"/v1/subscriptions/{sub['id']}/deliveries?status=delivered").json()
    assert [d["id"] for d in delivered] == [first]
    assert [a["status_code"] for a in delivered[0]["attempt_log"]] == [500, 200]
    assert delivered[0]["next_attempt_at"] is None and delivered[0]["delivered_at"]
    assert api.client.get(f"/v1/subscriptions/{sub['id']}/deliveries?status=dead").json() == []

    assert api.client.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204
    assert api.client.get(f"/v1/subscriptions/{sub['id']}").status_code == 404
    with Session(api.engine) as session:
        assert session.exec(select(func.count()).select_from(WebhookDelivery)).one() == 0
        assert session.exec(select(func.count()).select_from(WebhookAttempt)).one() == 0
    assert api.emit({"n": 2}) == []


def test_only_given_up_deliveries_can_be_replayed(webhook_api, receiver):
    api = webhook_api()
    api.subscribe(receiver.script("/fine"))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    r = api.client.post(f"/v1/webhooks/dead-letters/{msg_id}/replay")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


def test_delivered_rows_can_be_purged_after_a_retention_period(webhook_api, receiver):
    api = webhook_api()
    api.subscribe(receiver.script("/keep", 500, then=200))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    with Session(api.engine) as session:
        assert purge_settled(session, timedelta(days=1)) == 0
        assert purge_settled(session, timedelta(seconds=-1)) == 1
        session.commit()
        assert session.exec(select(func.count()).select_from(WebhookAttempt)).one() == 0
        assert session.get(WebhookDelivery, msg_id) is None


def test_subscriptions_are_listed_in_pages_linked_by_cursor(webhook_api, receiver):
    api = webhook_api(with_sender=False)
    before = {s["id"] for s in api.client.get("/v1/subscriptions", params={"limit": 200}).json()}
    made = [
        api.client.post("/v1/subscriptions", json={"url": receiver.url(f"/p{i}"), "event_types": [EVENT]}).json()["id"]
        for i in range(5)
    ]
    seen, url, pages = [], "/v1/subscriptions?limit=2", 0
    while url:
        r = api.client.get(url)
        assert r.status_code == 200 and len(r.json()) <= 2
        seen += [s["id"] for s in r.json()]
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        pages += 1
    assert [s for s in seen if s not in before] == made and len(seen) == len(set(seen))
    assert pages == -(-len(seen) // 2)
    r = api.client.get("/v1/subscriptions", params={"cursor": "WzFd"})  # [1]: not this list's key
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
