"""The check-in service's edge (issue 13): metrics are no side channel, one token check.

Each test reproduces a finding of the security review against the real service over real HTTP.
"""

from __future__ import annotations

import re

from jose import jwt

from tests.checkin.conftest import WEEKLY_OK
from tests.consent.conftest import new_sub
from tests.servicefixtures import bearer


def published(metrics: str) -> float:
    match = re.search(r'^kinwell_events_published_total\{service="checkin"\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_crisis_flag_moves_no_counter_an_operator_can_read(own_harness):
    h = own_harness
    sub = new_sub()
    h.grant(sub, "checkin", "escalation")  # no purpose whose events are published per check-in
    h.drained()
    before = published(h.svc.metrics())
    body = {"answers": WEEKLY_OK, "note": "I want to die", "talk_to_someone": True}
    assert h.svc.client.post("/v1/checkins", json=body, headers=h.auth(sub)).status_code == 201
    h.wait(lambda: h.stream("CHECKIN", "checkin.escalation."), "the crisis flag on the bus")
    h.drained()
    after = h.svc.metrics()
    # The flag was published (above), and no published-events counter moved with it.
    assert published(after) == before
    assert 'kinwell_events_published_total{service="checkin"}' in after or before == 0.0


def test_metrics_are_not_served_on_the_service_port(harness):
    response = harness.svc.client.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "kinwell_http_requests_total" in harness.svc.metrics()


def _signed(harness, **claims) -> str:
    platform = harness.platform
    base = {"iss": platform.jwt_issuer, "aud": platform.jwt_audience, "sub": new_sub(), "roles": ["employee"]}
    return str(jwt.encode({**base, **claims}, platform.secret("dev_jwt_secret"), algorithm="HS256"))


def test_absurd_token_lifetimes_are_401_not_500(harness):
    import time

    now = int(time.time())
    for exp in (10**400, 2**64, now + 100 * 365 * 86400):
        token = _signed(harness, iat=now, exp=exp)
        for path in ("/v1/me/checkins", "/v1/me/nudges"):
            response = harness.svc.client.get(path, headers=bearer(token))
            assert response.status_code == 401, (exp, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    no_iat = _signed(harness, exp=now + 600)
    assert harness.svc.client.get("/v1/me/checkins", headers=bearer(no_iat)).status_code == 401


def test_my_checkins_come_in_cursor_pages(harness):
    sub = new_sub()
    harness.grant(sub, "checkin")
    for _ in range(5):
        body = {"answers": WEEKLY_OK}
        assert harness.svc.client.post("/v1/checkins", json=body, headers=harness.auth(sub)).status_code == 201
    everything = harness.svc.client.get("/v1/me/checkins", headers=harness.auth(sub)).json()
    assert len(everything["items"]) == 5 and everything["next_cursor"] is None
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = harness.svc.client.get("/v1/me/checkins", params=params, headers=harness.auth(sub)).json()
        seen.append([c["id"] for c in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in seen] == [2, 2, 1]
    assert [i for p in seen for i in p] == [c["id"] for c in everything["items"]]
