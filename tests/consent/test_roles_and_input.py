"""Roles and bad input: a clear 4xx problem+json, and nothing changes anywhere."""

from __future__ import annotations

import pytest

from shared.consent_gate import kv_key
from shared.topology import KV_BUCKET
from tests.consent.conftest import new_sub, wait_until
from tests.consent.test_consent_flow import current_version, grant
from tests.servicefixtures import bearer

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}


def assert_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    return body


def test_roles(platform):
    client = platform.consent.client
    employee, admin, hr = platform.auth(new_sub()), platform.auth("A1", "admin"), platform.auth("H1", "hr_analyst")
    assert_problem(client.get("/v1/admin/purposes", headers=employee), 403)
    assert_problem(client.post("/v1/admin/purposes/checkin/versions", json={}, headers=employee), 403)
    assert_problem(client.get("/v1/stats/consent-rates", headers=employee), 403)
    assert_problem(client.get("/v1/stats/consent-rates", headers=admin), 403)
    assert_problem(client.get("/v1/me/consents", headers=hr), 403)  # not an employee role
    assert_problem(client.get("/v1/me/consents"), 401)
    assert_problem(client.get("/v1/me/consents", headers={"Authorization": "Bearer nope"}), 401)
    assert client.get("/v1/admin/purposes", headers=admin).status_code == 200
    assert client.get("/v1/policy").status_code == 200  # public
    assert client.get("/.well-known/jwks.json").status_code == 200


def _kv_entry(platform, key: str):
    async def get(js):
        from nats.js.errors import KeyNotFoundError

        kv = await js.key_value(KV_BUCKET)
        try:
            return (await kv.get(key)).value
        except KeyNotFoundError:
            return None

    return platform.ops(get)


def test_bad_input_is_refused_and_changes_nothing(platform):
    client, sub = platform.consent.client, new_sub()
    auth, subject = platform.auth(sub), platform.pseudonym(sub)
    version = current_version(platform, "checkin")
    other = new_sub()
    other_receipt = grant(platform, other, "checkin")["receipt_id"]

    cases = [
        (client.put("/v1/me/consents/astrology", json={"policy_version": 1}, headers=auth), 422),
        (client.put("/v1/me/consents/checkin", json={"policy_version": version + 7}, headers=auth), 409),
        (client.put("/v1/me/consents/checkin", json={"policy_version": 0}, headers=auth), 422),
        (client.put("/v1/me/consents/checkin", content=b'{"policy_version": ', headers=auth | JSON), 400),
        (client.put("/v1/me/consents/checkin", json={"policy_version": version, "x": "y" * 70_000}, headers=auth), 413),
        (
            client.put("/v1/me/consents/checkin", json={"policy_version": version, "pseudonym": subject}, headers=auth),
            422,
        ),
        (
            client.put("/v1/me/consents/checkin", json={"policy_version": version, "employee_id": other}, headers=auth),
            422,
        ),
        (client.put("/v1/me/consents/checkin", json={"policy_version": version, "language": "de"}, headers=auth), 422),
        (client.put("/v1/me/consents/checkin", json={"policy_version": version, "channel": "fax"}, headers=auth), 422),
        (client.put("/v1/me/consents/checkin", json=[version], headers=auth), 422),
        (
            client.put(
                "/v1/me/consents/checkin",
                json={"policy_version": version, "contact": {"preferred_channel": "phone", "phone": "+15555550100"}},
                headers=auth,
            ),
            422,
        ),
        (
            client.put(
                "/v1/me/consents/escalation",
                json={"policy_version": version, "contact": {"preferred_channel": "phone", "email": "a@b.org"}},
                headers=auth,
            ),
            422,
        ),
        (client.delete("/v1/me/consents/checkin", headers=auth), 409),  # nothing to withdraw
        (client.get(f"/v1/me/receipts/{other_receipt}", headers=auth), 404),  # another subject's
        (client.get("/v1/me/receipts/not-a-uuid", headers=auth), 422),
        (client.get("/v1/me/consents", params={"lang": "english"}, headers=auth), 422),
        # A token for another subject changes only that subject: no route names a subject.
        (client.put(f"/v1/me/consents/checkin?employee_id={other}", json={"policy_version": 99}, headers=auth), 409),
    ]
    for response, status in cases:
        body = assert_problem(response, status)
        assert sub not in response.text and other not in response.text, body  # no echo of identifiers

    assert client.get("/v1/me/consents/history", headers=auth).json() == {"entries": [], "next_cursor": None}
    assert all(c["state"] == "not_given" for c in client.get("/v1/me/consents", headers=auth).json()["consents"])
    for purpose in ("checkin", "escalation"):
        assert _kv_entry(platform, kv_key(subject, purpose)) is None
    # The other subject's consent is untouched.
    history = client.get("/v1/me/consents/history", headers=platform.auth(other)).json()["entries"]
    assert [e["state"] for e in history] == ["granted"]
    wait_until(lambda: all(platform.gates(platform.pseudonym(other), "checkin").values()))


@pytest.fixture
def lone_consent(start_service):
    """A consent service with a database of its own (its own tenant directory), for stats."""
    return start_service("consent")


def test_hr_analyst_sees_rates_only_for_groups_of_at_least_k(lone_consent, token):
    """Below k every figure is suppressed; and a reading is this ISO week's stored release, so a
    5th subject joining does not change what HR sees until the next release (issue 11.5)."""
    client = lone_consent.client
    hr = bearer(token("H1", "hr_analyst"))
    k = lone_consent.settings.platform.k_anonymity
    subs = [new_sub() for _ in range(k)]
    for i, sub in enumerate(subs[:-1]):
        purpose = "checkin" if i % 2 == 0 else "personalization"
        r = client.put(f"/v1/me/consents/{purpose}", json={"policy_version": 1}, headers=bearer(token(sub)))
        assert r.status_code == 200

    rates = client.get("/v1/stats/consent-rates", headers=hr).json()
    assert rates["suppressed"] is True and rates["group_size"] is None and rates["k"] == k
    assert rates["reason"] == "below_k"
    assert all(p["rate"] is None and p["suppressed"] is True for p in rates["purposes"])

    r = client.put("/v1/me/consents/checkin", json={"policy_version": 1}, headers=bearer(token(subs[-1])))
    assert r.status_code == 200
    assert client.get("/v1/stats/consent-rates", headers=hr).json() == rates  # the stored release
