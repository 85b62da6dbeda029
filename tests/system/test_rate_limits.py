"""Abuse limits on public writes (issue 12 item 7): per principal and per source, 429 problem+json
with Retry-After; and load shedding past the in-flight limit (503 busy). Real services, small limits."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.servicefixtures import bearer


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 429 and response.json()["type"].endswith("/rate-limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_consent_changes_are_limited_per_principal(start_service, token):
    consent = start_service("consent", rate_limit_per_principal="3/minute", rate_limit_per_source="")
    version = next(
        p["version"] for p in consent.client.get("/v1/policy").json()["purposes"] if p["purpose"] == "checkin"
    )
    mine, other = bearer(token("E-busy")), bearer(token("E-calm"))
    for _ in range(3):
        r = consent.client.put("/v1/me/consents/checkin", json={"policy_version": version}, headers=mine)
        assert r.status_code == 200, r.text
    assert_limited(consent.client.put("/v1/me/consents/checkin", json={"policy_version": version}, headers=mine))
    assert_limited(consent.client.get("/v1/me/export", headers=mine))  # and an export, as expensive
    # Reads are not limited, and another caller is not affected.
    assert consent.client.get("/v1/me/consents", headers=mine).status_code == 200
    r = consent.client.put("/v1/me/consents/checkin", json={"policy_version": version}, headers=other)
    assert r.status_code == 200


def test_check_ins_and_signals_are_limited_per_principal(start_service, token):
    checkin = start_service("checkin", rate_limit_per_principal="2/minute", rate_limit_per_source="")
    employee, integration = bearer(token("E-many")), bearer(token("I-many", "integration"))
    for headers, path in ((employee, "/v1/checkins"), (integration, "/v1/signals")):
        for _ in range(2):  # answered (403 without consent, 422 for an empty batch): counted all the same
            assert checkin.client.post(path, json={}, headers=headers).status_code in (403, 422)
        assert_limited(checkin.client.post(path, json={}, headers=headers))


def test_unauthenticated_writes_are_limited_per_source(start_service):
    consent = start_service("consent", rate_limit_per_source="4/minute")
    for _ in range(4):  # unsigned HRIS webhooks: refused, and counted
        assert consent.client.post("/v1/webhooks/hris", json={}).status_code in (400, 401)
    assert_limited(consent.client.post("/v1/webhooks/hris", json={}))
    assert_limited(consent.client.put("/v1/me/consents/checkin", json={}))
    assert consent.client.get("/healthz").status_code == 200  # reads are not limited


def test_requests_beyond_the_in_flight_limit_are_shed_at_once(start_service, token):
    """An export waiting for the other services' parts (none runs here) fills a limit of one: the
    next request is answered 503 busy with Retry-After at once, probes still answer, and once the
    export is answered requests are served again."""
    consent = start_service("consent", http_max_in_flight=1, subject_request_timeout_seconds=4)
    with ThreadPoolExecutor(1) as pool:
        export = pool.submit(consent.client.get, "/v1/me/export", headers=bearer(token("E-waits")), timeout=30)
        deadline = time.monotonic() + 3
        while (busy := consent.client.get("/v1/policy")).status_code != 503:
            assert busy.status_code == 200 and time.monotonic() < deadline, busy.text
            time.sleep(0.02)
        assert busy.headers["content-type"] == "application/problem+json"
        assert busy.json()["type"].endswith("/busy") and busy.headers["retry-after"] == "1"
        assert consent.client.get("/healthz").status_code == 200
        assert consent.client.get("/readyz").status_code == 200
        answered = export.result()
    assert answered.status_code == 200 and answered.json()["complete"] is False, answered.text
    deadline = time.monotonic() + 3  # in flight until its handler ends, just after the answer
    while (after := consent.client.get("/v1/policy")).status_code != 200:
        assert after.status_code == 503 and time.monotonic() < deadline, after.text
        time.sleep(0.02)


def test_a_request_whose_body_is_still_arriving_takes_no_in_flight_slot(start_service, token):
    """Slow clients hold connections, not the app: with a limit of one, a request whose body
    trickles in leaves room for others, and is answered once its body is complete."""
    consent = start_service("consent", http_max_in_flight=1)
    version = next(
        p["version"] for p in consent.client.get("/v1/policy").json()["purposes"] if p["purpose"] == "checkin"
    )
    body = json.dumps({"policy_version": version}).encode()
    head = (
        f"PUT /v1/me/consents/checkin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token('E-slow')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", consent.settings.port), timeout=10) as slow:
        slow.sendall(head + body[:5])
        for _ in range(20):
            assert consent.client.get("/v1/policy").status_code == 200
            time.sleep(0.02)
        slow.sendall(body[5:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 200 ")
