"""Abuse limits on public writes (issue 12 item 7): per principal and per source, 429 problem+json
with Retry-After, against real services with small limits."""

from __future__ import annotations

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
