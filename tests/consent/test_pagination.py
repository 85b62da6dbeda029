"""Bounded histories (issue 13 item 8): a repeated grant is a no-op returning the existing
receipt, and list endpoints answer in cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime

from services.consent.rights.schemas import AccessEntry
from services.consent.rights.service import access_page
from shared import audit
from shared.pagination import PageRequest
from tests.consent.conftest import new_sub
from tests.consent.test_consent_flow import current_version, grant, new_version_body


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


def walk(get, limit: int) -> list[list]:
    """Follow ``next_cursor`` from the first page to the last; the items of each page."""
    pages, cursor = [], None
    while True:
        body = get({"limit": limit, **({"cursor": cursor} if cursor else {})})
        pages.append(body["entries"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_the_access_log_comes_in_cursor_pages_each_entry_once(platform):
    sub = new_sub()
    subject, auth = platform.pseudonym(sub), platform.auth(sub)
    with platform.consent_db() as session:
        for n in range(7):  # several land on one instant on a coarse clock: the cursor must split ties
            audit.append(session, actor=f"c{n}", actor_role="counsellor", subject=subject, action="read", purpose="x")
        session.commit()

    def get(params):
        r = platform.consent.client.get("/v1/me/access-log", params=params, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()

    everything = get({"limit": 200})
    assert [e["actor"] for e in everything["entries"]] == [f"c{n}" for n in range(7)]
    assert everything["next_cursor"] is None
    pages = walk(get, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == everything["entries"]


def test_the_admin_purpose_list_comes_in_link_pages_each_version_once(platform):
    admin = platform.auth("A1", "admin")
    client = platform.consent.client
    first = client.get("/v1/admin/purposes", params={"limit": 200}, headers=admin)
    assert first.status_code == 200 and "link" not in first.headers
    everything = [(p["purpose"], v["version"]) for p in first.json() for v in p["versions"]]
    assert len(everything) == len(set(everything)) >= 5
    seen, url, pages = [], "/v1/admin/purposes?limit=2", 0
    while url:
        r = client.get(url, headers=admin)
        assert r.status_code == 200, r.text
        seen += [(p["purpose"], v["version"]) for p in r.json() for v in p["versions"]]
        assert sum(len(p["versions"]) for p in r.json()) <= 2
        link = r.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
        pages += 1
    assert seen == everything and pages == -(-len(everything) // 2)


def test_bad_cursors_on_the_access_log_and_purpose_lists_are_400_problem_json(platform):
    not_json, three_numbers, one_string = "bm90LWpzb24", "WzEsMiwzXQ", "WyJ4Il0"  # [1,2,3]; ["x"]
    for path, auth, cursors in (
        ("/v1/me/access-log", platform.auth(new_sub()), (not_json, three_numbers, one_string)),
        ("/v1/admin/purposes", platform.auth("A1", "admin"), (not_json, three_numbers, one_string)),
        ("/v1/policy/checkin/versions", {}, (not_json, three_numbers, one_string)),
        ("/v1/stats/consent-rates/org-units", platform.auth("H1", "hr_analyst"), (not_json, three_numbers)),
    ):
        for cursor in cursors:
            r = platform.consent.client.get(path, params={"cursor": cursor}, headers=auth)
            assert r.status_code == 400, (path, cursor, r.text)
            assert r.headers["content-type"] == "application/problem+json"


def test_access_log_pages_split_entries_of_one_instant_without_loss_or_repeat():
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    entries = [
        AccessEntry(service=svc, at=at, actor=f"{svc}{n}", actor_role="counsellor", action="read", purpose="x")
        for svc in ("escalation", "consent")
        for n in range(3)
    ]
    seen, cursor = [], None
    while True:
        items, cursor = access_page(entries, PageRequest(2, cursor))
        seen += [e.actor for e in items]
        if cursor is None:
            break
    assert seen == ["consent0", "consent1", "consent2", "escalation0", "escalation1", "escalation2"]


def test_a_purpose_s_policy_versions_come_in_cursor_pages_each_once(platform):
    admin = platform.auth("A1", "admin")
    for _ in range(3):  # same terms, not material: nothing lapses
        body = new_version_body(platform, "work_patterns", material=False)
        r = platform.consent.client.post("/v1/admin/purposes/work_patterns/versions", json=body, headers=admin)
        assert r.status_code == 201, r.text

    def get(params):
        r = platform.consent.client.get("/v1/policy/work_patterns/versions", params=params)
        assert r.status_code == 200, r.text
        return {"entries": r.json()["versions"], "next_cursor": r.json()["next_cursor"]}

    everything = get({"limit": 200})["entries"]
    assert len(everything) >= 4 and [v["version"] for v in everything] == sorted(v["version"] for v in everything)
    pages = walk(get, 2)
    assert all(len(p) == 2 for p in pages[:-1]) and [v for p in pages for v in p] == everything
