"""Outbound webhooks end to end: admin API over HTTP, sender, loopback receivers, real database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlmodel import Session, select
from standardwebhooks import Webhook

from shared.webhooks import WebhookAttempt, WebhookSubscription, enqueue
from tests.integrations.conftest import EVENT, loopback_settings
from tests.integrations.loopback import wait_until


def _verified(secret: str, hit) -> dict:
    """What a receiver does: verify with the standardwebhooks package, then read the body."""
    return Webhook(secret).verify(hit.body, hit.headers)


def test_failing_receiver_gets_every_event_exactly_once_in_effect(webhook_api, receiver):
    api = webhook_api()
    url = receiver.script("/hook", 500, 500, 503, then=200)
    sub = api.subscribe(url)
    ids = [api.emit({"insight_id": f"i-{n}"})[0] for n in range(5)]

    wait_until(lambda: api.statuses() == ["delivered"] * 5)
    hits = receiver.hits_on("/hook")
    assert len(hits) == 8  # three failed answers, then one success per event
    processed = {}
    for hit in hits:
        body = _verified(sub["secret"], hit)
        processed.setdefault(hit.headers["webhook-id"], body)  # receiver-side de-duplication
    assert set(processed) == set(ids)
    assert sorted(b["data"]["insight_id"] for b in processed.values()) == [f"i-{n}" for n in range(5)]
    assert all(b["type"] == EVENT for b in processed.values())
    retried = [i for i in ids if api.delivery(i).attempts > 1]
    assert retried, "some deliveries were retried"
    log = api.client.get(f"/v1/subscriptions/{sub['id']}/deliveries").json()
    codes = sorted(a["status_code"] for d in log for a in d["attempt_log"])
    assert codes == [200] * 5 + [500, 500, 503]
    assert all(a["duration_ms"] >= 0 for d in log for a in d["attempt_log"])


def test_signature_headers_follow_standard_webhooks(webhook_api, receiver):
    api = webhook_api()
    sub = api.subscribe(receiver.script("/sig"))
    (msg_id,) = api.emit({"n": 1})
    hit = wait_until(lambda: receiver.hits_on("/sig"))[0]
    assert hit.headers["webhook-id"] == msg_id and msg_id.startswith("msg_")
    assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 30
    assert hit.headers["webhook-signature"].startswith("v1,")
    assert hit.headers["content-type"] == "application/json"
    assert _verified(sub["secret"], hit)["data"] == {"n": 1}
    other = Webhook("whsec_" + "A" * 43)
    try:
        other.verify(hit.body, hit.headers)
        raise AssertionError("a different secret must not verify")
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "WebhookVerificationError"


def test_retry_after_seconds_is_honoured(webhook_api, receiver):
    api = webhook_api()
    api.subscribe(receiver.script("/busy", (503, {"Retry-After": "1"}), then=200))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    first, second = receiver.hits_on("/busy")
    assert second.at - first.at >= 0.95  # the schedule alone would retry after 0.2 s


def test_retry_after_http_date_is_honoured(webhook_api, receiver):
    api = webhook_api()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    api.subscribe(receiver.script("/slow", (429, {"Retry-After": when}), then=200))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    first, second = receiver.hits_on("/slow")
    assert second.at - first.at >= 0.9


def test_410_gone_disables_the_subscription(webhook_api, receiver):
    api = webhook_api()
    sub = api.subscribe(receiver.script("/gone", then=410))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "failed")
    read = api.client.get(f"/v1/subscriptions/{sub['id']}").json()
    assert read["enabled"] is False and read["disabled_reason"] == "gone"
    assert api.emit({"n": 2}) == []  # nothing is queued for a disabled subscription
    wait_until(api.settled)
    assert api.statuses() == ["failed"] and api.sender.attempted == 1
    assert len(receiver.hits_on("/gone")) == 1
    replay = api.client.post(f"/v1/webhooks/dead-letters/{msg_id}/replay")
    assert replay.status_code == 409 and replay.headers["content-type"] == "application/problem+json"


def test_dead_letter_after_the_last_attempt_and_replay(webhook_api, receiver):
    api = webhook_api()
    sub = api.subscribe(receiver.script("/down", then=500))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "dead")
    assert api.delivery(msg_id).attempts == 4 == len(receiver.hits_on("/down"))  # the whole schedule
    dead = api.client.get("/v1/webhooks/dead-letters").json()
    assert [d["id"] for d in dead] == [msg_id] and dead[0]["last_status_code"] == 500
    assert "payload" not in dead[0]

    receiver.script("/down", then=200)  # the receiver is fixed
    r = api.client.post(f"/v1/webhooks/dead-letters/{msg_id}/replay")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    last = receiver.hits_on("/down")[-1]
    assert last.headers["webhook-id"] == msg_id and _verified(sub["secret"], last)["data"] == {"n": 1}
    assert api.client.get("/v1/webhooks/dead-letters").json() == []
    again = api.client.post(f"/v1/webhooks/dead-letters/{msg_id}/replay")
    assert again.status_code == 404


def test_redirects_are_not_followed(webhook_api, receiver):
    api = webhook_api()
    target = receiver.url("/elsewhere")
    api.subscribe(receiver.script("/moved", then=(302, {"Location": target})))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "dead")
    assert receiver.hits_on("/elsewhere") == []
    assert api.delivery(msg_id).last_status_code == 302


def test_a_slow_receiver_is_a_timed_out_attempt(webhook_api, receiver):
    api = webhook_api(loopback_settings(timeout_seconds=0.3, retry_schedule=[0, 0.1]))
    api.subscribe(receiver.script("/slow", ("sleep", 2.0), then=200))
    (msg_id,) = api.emit({"n": 1})
    wait_until(lambda: api.delivery(msg_id).status == "delivered")
    with Session(api.engine) as session:
        attempts = session.exec(select(WebhookAttempt).where(WebhookAttempt.delivery_id == msg_id)).all()
    assert [a.error_type for a in attempts] == ["timeout", None]
    assert attempts[0].duration_ms < 1500


def test_a_rolled_back_change_sends_nothing(webhook_api, receiver):
    api = webhook_api()
    api.subscribe(receiver.script("/tx"))
    with Session(api.engine) as session:
        assert enqueue(session, EVENT, {"n": 1})
        session.rollback()
    wait_until(api.settled)
    assert api.statuses() == [] and api.sender.attempted == 0 and receiver.hits_on("/tx") == []


def test_deliveries_go_only_to_subscriptions_that_want_the_type(webhook_api, receiver):
    api = webhook_api()
    api.subscribe(receiver.script("/a"), ["insight.released"])
    api.subscribe(receiver.script("/b"), ["rollup.published"])
    api.subscribe(receiver.script("/all"), ["*"])
    api.emit({"n": 1}, "rollup.published")
    wait_until(lambda: len(receiver.hits) == 2)
    wait_until(api.settled)
    assert api.statuses() == ["delivered", "delivered"] and api.sender.attempted == 2
    assert {h.path for h in receiver.hits} == {"/b", "/all"}


def test_two_senders_on_one_database_send_each_delivery_once(webhook_api, receiver):
    api = webhook_api()
    replica = webhook_api()  # a second replica on the same database
    api.subscribe(receiver.script("/replicas"))
    ids = set()
    for n in range(40):
        ids.update(api.emit({"n": n}))
    wait_until(lambda: api.statuses().count("delivered") == 40)
    wait_until(lambda: api.settled() and replica.settled())
    assert api.sender.attempted + replica.sender.attempted == 40  # nothing sent twice, nothing in flight
    hits = receiver.hits_on("/replicas")
    assert len(hits) == 40 and {h.headers["webhook-id"] for h in hits} == ids


def test_the_secret_is_encrypted_at_rest(webhook_api, receiver):
    api = webhook_api()
    sub = api.subscribe(receiver.script("/rest"))
    with Session(api.engine) as session:
        row = session.get(WebhookSubscription, sub["id"])
        assert row is not None
        stored = row.secret_ciphertext
    assert sub["secret"] not in stored and sub["secret"][6:] not in stored
    assert stored.startswith("v2.")  # the envelope of shared.crypto (v1 before it)
