"""Every list escalation answers is paginated by cursor (issue 13 item 8): the counsellors' case
queue, an employee's own support requests and the admins' rosters. A walk page by page returns
every row exactly once, in the list's order; a cursor that is not one of ours is 400 problem+json."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shared.pagination import encode_cursor
from tests.escalation.conftest import new_sub
from tests.integrations.loopback import wait_until

PROBLEM = "application/problem+json"


def walk(client: Any, path: str, headers: dict[str, str], key: str, limit: int) -> tuple[list[Any], int]:
    """Follow ``next_cursor`` from the first page to the last: every item, and how many pages."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body[key]) <= limit
        items += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 100, "the walk does not end"


def test_the_case_queue_walks_every_case_once_in_queue_order(escalation):
    h = escalation
    flagged = [new_sub() for _ in range(4)]
    h.grant(*flagged)
    for sub, severity in zip(flagged, ("routine", "critical", "high", "critical"), strict=True):
        h.flag(sub, severity)
    for _ in range(3):  # confirmed cases, opened at once
        r = h.svc.client.post("/v1/me/support-requests", json={}, headers=h.auth(new_sub()))
        assert r.status_code == 201, r.text
    wait_until(lambda: len(h.svc.client.get("/v1/cases?limit=200", headers=h.counsellor()).json()["items"]) == 7)
    whole = h.svc.client.get("/v1/cases?limit=200", headers=h.counsellor()).json()
    assert whole["next_cursor"] is None

    walked, pages = walk(h.svc.client, "/v1/cases", h.counsellor(), "items", limit=2)
    ids = [c["id"] for c in walked]
    assert ids == [c["id"] for c in whole["items"]]  # the same order as one page
    assert len(set(ids)) == len(ids) == 7 and pages == math.ceil(7 / 2)


def test_support_requests_walk_newest_first_each_once(escalation):
    h = escalation
    sub = new_sub()
    opened = []
    for n in range(5):
        r = h.svc.client.post("/v1/me/support-requests", json={"note": f"call {n}"}, headers=h.auth(sub))
        assert r.status_code == 201, r.text
        opened.append(r.json()["id"])
    walked, pages = walk(h.svc.client, "/v1/me/support-requests", h.auth(sub), "items", limit=2)
    assert sorted(c["id"] for c in walked) == sorted(opened) and len(walked) == 5 and pages == 3
    stamps = [(c["opened_at"], c["id"]) for c in walked]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    other, _ = walk(h.svc.client, "/v1/me/support-requests", h.auth(new_sub()), "items", limit=2)
    assert other == []  # nobody walks into another employee's requests


def roster(name: str) -> dict[str, Any]:
    shift = {"days": ["mon"], "start": "09:00", "end": "17:00", "members": [f"c-{name}"]}
    return {"name": name, "timezone": "Europe/Paris", "shifts": [shift]}


def test_rosters_walk_by_name_within_one_version(escalation):
    h = escalation
    client, admin = h.svc.client, h.admin()
    names = ["night", "alpha", "weekend", "day", "backup"]
    assert client.put("/v1/rosters", json={"rosters": [roster(n) for n in names]}, headers=admin).status_code == 200
    walked, pages = walk(client, "/v1/rosters", admin, "rosters", limit=2)
    assert [r["name"] for r in walked] == sorted(names) and pages == 3

    first = client.get("/v1/rosters", params={"limit": 2}, headers=admin).json()
    assert client.put("/v1/rosters", json={"rosters": [roster("alpha")]}, headers=admin).status_code == 200
    r = client.get("/v1/rosters", params={"cursor": first["next_cursor"]}, headers=admin)
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM), r.text
    assert r.json()["type"].endswith("/rosters-changed")


@pytest.mark.parametrize(
    "cursor",
    [
        "bm90LWpzb24",  # base64url of "not-json"
        encode_cursor("a", "b", "c", "d"),  # JSON, but not this list's key
        encode_cursor(1, 2, 3),  # the right length, the wrong types
    ],
)
def test_a_cursor_that_is_not_ours_is_400_problem_json(escalation, cursor):
    h = escalation
    for path, headers in (
        ("/v1/cases", h.counsellor()),
        ("/v1/me/support-requests", h.auth(new_sub())),
        ("/v1/rosters", h.admin()),
    ):
        r = h.svc.client.get(path, params={"cursor": cursor}, headers=headers)
        assert r.status_code == 400, (path, r.text)
        assert r.headers["content-type"].startswith(PROBLEM) and r.json()["type"].endswith("/invalid-cursor")


def test_a_cursor_whose_time_is_not_a_time_is_400_not_500(escalation):
    h = escalation
    for path, headers, cursor in (
        ("/v1/cases", h.counsellor(), encode_cursor(1, "yesterday", "x")),
        ("/v1/me/support-requests", h.auth(new_sub()), encode_cursor("yesterday", "x")),
    ):
        r = h.svc.client.get(path, params={"cursor": cursor}, headers=headers)
        assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), (path, r.text)
