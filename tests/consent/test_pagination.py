"""Bounded histories (issue 13 item 8): a repeated grant is a no-op returning the existing
receipt, and list endpoints answer in cursor pages."""

from __future__ import annotations

from tests.consent.conftest import new_sub
from tests.consent.test_consent_flow import current_version, grant


def history(platform, sub, **params) -> dict:
    r = platform.consent.client.get("/v1/me/consents/history", params=params, headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    return r.json()


def test_a_repeated_grant_at_the_same_version_returns_the_existing_receipt(platform):
    sub = new_sub()
    first = grant(platform, sub, "checkin")
    again = [grant(platform, sub, "checkin") for _ in range(8)]
    assert {g["receipt_id"] for g in again} == {first["receipt_id"]}
    entries = history(platform, sub)["entries"]
    assert [(e["purpose"], e["state"]) for e in entries] == [("checkin", "granted")]
    # A real change is still recorded: withdraw, then grant again gives a new receipt.
    assert platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub)).status_code == 200
    regrant = grant(platform, sub, "checkin")
    assert regrant["receipt_id"] != first["receipt_id"]
    assert len(history(platform, sub)["entries"]) == 3


def test_the_consent_history_comes_in_cursor_pages(platform):
    sub = new_sub()
    auth = platform.auth(sub)
    version = current_version(platform, "checkin")
    for _ in range(5):  # 10 entries: grant and withdraw, five times
        grant(platform, sub, "checkin", policy_version=version)
        assert platform.consent.client.delete("/v1/me/consents/checkin", headers=auth).status_code == 200
    everything = history(platform, sub, limit=200)
    assert len(everything["entries"]) == 10 and everything["next_cursor"] is None
    pages, cursor = [], None
    while True:
        body = history(platform, sub, limit=3, **({"cursor": cursor} if cursor else {}))
        pages.append(body["entries"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [e for p in pages for e in p] == everything["entries"]
    assert len(history(platform, sub)["entries"]) == 10  # default page size 50


def test_bad_cursors_and_limits_are_4xx_problem_json(platform):
    auth = platform.auth(new_sub())
    for params, status in (({"cursor": "bm90LWpzb24"}, 400), ({"cursor": "WyJ4Il0"}, 400), ({"limit": 0}, 422)):
        r = platform.consent.client.get("/v1/me/consents/history", params=params, headers=auth)
        assert r.status_code == status and r.headers["content-type"] == "application/problem+json", r.text
