"""The aggregator over real NATS with a real check-in service: consenting employees only, weekly
releases stored and replayed, suppression, the managers' scope, the team view, late drops."""

from __future__ import annotations

import json
from datetime import date

from sqlmodel import Session, select

from services.aggregator.contributions.models import Cell
from services.aggregator.releases.models import Release
from services.checkin.clock import iso_week
from tests.aggregator.conftest import Stack
from tests.checkin.conftest import new_sub

ORG = {"dept": None, "team-a": "dept", "team-b": "dept", "team-c": "dept"}
SIZES = {"team-a": 7, "team-b": 9, "team-c": 2}


def _employees(stack: Stack, consenting: bool = True) -> dict[str, list[str]]:
    people: dict[str, list[str]] = {}
    for unit, size in SIZES.items():
        people[unit] = [new_sub() for _ in range(size)]
        for sub in people[unit]:
            stack.checkin.grant(sub, "checkin", "aggregate_insights")
            stack.checkin.assign(sub, unit, date(2020, 1, 1))
    return people


def _check_in_all(stack: Stack, people: dict[str, list[str]]) -> None:
    from tests.checkin.test_privacy import org_unit_known

    today = date.today()
    for subs in people.values():
        for sub in subs:
            stack.checkin.wait(lambda sub=sub: org_unit_known(stack.checkin, sub, today), "org unit")
            assert stack.checkin.checkin(sub).status_code == 201


def _cells(body: dict, metric: str = "who5_index") -> dict[str, dict]:
    return {c["org_unit"]: c for c in body["cells"] if c["metric"] == metric}


def test_weekly_release_of_consenting_contributions_is_stored_suppressed_and_replayed(stack: Stack):
    stack.org(ORG)
    people = _employees(stack)
    outsider = new_sub()  # checks in, but never agreed to aggregate insights
    stack.checkin.grant(outsider, "checkin")
    stack.checkin.assign(outsider, "team-a", date(2020, 1, 1))
    _check_in_all(stack, {**people, "x": [outsider]})
    stack.checkin.wait(lambda: stack.contributors() == 18, "18 contributions (the outsider's never comes)")
    # team-c has 2 members: check-in contributed them under dept (shared.contributions), so no
    # input names team-c; its cell is empty (below k) and dept's direct cell holds the two.
    with Session(stack.aggregator.runtime.engine) as session:
        assert session.exec(select(Cell).where(Cell.org_unit == "team-c")).all() == []
    assert stack.release_now() == 1

    first = stack.get("/v1/rollups", "hr-1", "hr_analyst")
    assert first.status_code == 200, first.text
    cells = _cells(first.json())
    assert cells["team-c"] == {**cells["team-c"], "status": "suppressed", "reason": "below_k", "count": None}
    # dept - a - b would give dept's direct cell (team-c's two): the smallest sibling goes too.
    assert cells["team-a"]["status"] == "suppressed" and cells["team-a"]["reason"] == "complementary"
    assert cells["team-b"]["status"] == "released" and cells["dept"]["status"] == "released"
    for unit in ("team-b", "dept"):
        count, mean = cells[unit]["count"], cells[unit]["mean"]
        assert count["interval_95"][0] <= count["value"] <= count["interval_95"][1] and count["noise_scale"] > 0
        assert mean["interval_95"][0] <= mean["value"] <= mean["interval_95"][1]
    assert first.json()["next_cursor"] is None
    # Paged (issue 13.8): a walk two cells at a time meets every cell once, in the same order.
    walked, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = stack.get("/v1/rollups", "hr-1", "hr_analyst", **params).json()
        walked += body["cells"]
        pages += 1
        if (cursor := body["next_cursor"]) is None:
            break
    assert walked == first.json()["cells"] and pages == (len(walked) + 1) // 2
    bad = stack.get("/v1/rollups", "hr-1", "hr_analyst", cursor="bm90LWEtY3Vyc29y")
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    # Stored and served as stored: the same query gives the same numbers, also after a restart.
    assert stack.get("/v1/rollups", "hr-1", "hr_analyst").json() == first.json()
    stack.aggregator.restart()
    assert stack.get("/v1/rollups", "hr-2", "hr_analyst").json() == first.json()

    # Late check-ins for the released week are dropped and counted, not added.
    late = people["team-b"][0]
    assert stack.checkin.checkin(late).status_code == 201
    week = iso_week(date.today())

    def late_counted() -> bool:
        with Session(stack.aggregator.runtime.engine) as session:
            release = session.get(Release, week)
            return release is not None and release.late_dropped >= 2  # who5 and mood

    stack.checkin.wait(late_counted, "late contributions counted")
    assert stack.get("/v1/rollups", "hr-1", "hr_analyst").json() == first.json()

    # The release was announced, without any token or pseudonym.
    published = stack.checkin.wait_stream("AGGREGATOR", "aggregator.reporting.rollup_published.v1")
    body = json.loads(published[0][1])
    assert body["iso_week"] == week and body["cells_released"] >= 2
    assert stack.contributors() == 0  # the week's tokens and statistics are gone


def test_managers_see_their_own_subtree_at_k_ten_and_nothing_outside(stack: Stack):
    stack.org({**ORG, "team-a1": "team-a"})
    people = _employees(stack)
    stack.manager_of("boss-a", "team-a")
    _check_in_all(stack, people)
    stack.checkin.wait(lambda: stack.contributors() == 18, "contributions")
    stack.release_now()

    outside = stack.get("/v1/rollups", "boss-a", "manager", org_unit="team-b")
    assert outside.status_code == 403 and outside.headers["content-type"].startswith("application/problem+json")
    own = stack.get("/v1/rollups", "boss-a", "manager")
    assert own.status_code == 200 and own.json()["view"] == "manager" and own.json()["k"] == 10
    assert {c["org_unit"] for c in own.json()["cells"]} == {"team-a", "team-a1"}
    assert all(c["status"] == "suppressed" for c in own.json()["cells"])  # 7 people < 10
    org = stack.get("/v1/org", "boss-a", "manager").json()
    assert {u["org_unit"] for u in org["units"]} == {"team-a", "team-a1"}
    not_a_manager = stack.get("/v1/rollups", "boss-z", "manager").json()
    assert not_a_manager["cells"] == []


def test_the_team_view_is_exactly_what_hr_sees_for_the_unit_and_above(stack: Stack):
    stack.org(ORG)
    _check_in_all(stack, _employees(stack))
    stack.checkin.wait(lambda: stack.contributors() == 18, "contributions")
    stack.release_now()
    hr = _cells(stack.get("/v1/rollups", "hr-1", "hr_analyst").json())
    mine = stack.get("/v1/me/team-view", "emp-1", "employee", org_unit="team-b")
    assert mine.status_code == 200
    assert _cells(mine.json()) == {u: hr[u] for u in ("team-b", "dept")}


def test_only_hr_analysts_managers_and_the_team_view_read_figures(stack: Stack):
    for role in ("employee", "counsellor", "admin", "integration"):
        for path in ("/v1/org", "/v1/rollups", "/v1/insights", "/v1/program-metrics"):
            assert stack.get(path, "someone", role).status_code == 403, (role, path)
    assert stack.get("/v1/me/team-view", "hr-1", "hr_analyst", org_unit="dept").status_code == 403
    for path in ("/v1/rollups", "/v1/insights"):  # a cursor that is not the list's: 400, not ignored
        bad = stack.get(path, "hr-1", "hr_analyst", cursor="bm90LWEtY3Vyc29y")
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json", path
    bad = stack.get("/v1/rollups", "hr-1", "hr_analyst", **{"from": "2026-W60"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    backwards = stack.get("/v1/rollups", "hr-1", "hr_analyst", **{"from": "2026-W10", "to": "2026-W01"})
    assert backwards.status_code == 400


def test_withdrawing_aggregate_insights_retracts_this_weeks_contribution(stack: Stack):
    stack.org(ORG)
    sub = new_sub()
    stack.checkin.grant(sub, "checkin", "aggregate_insights")
    stack.checkin.staff("team-a")
    stack.checkin.assign(sub, "team-a", date(2020, 1, 1))
    _check_in_all(stack, {"team-a": [sub]})
    stack.checkin.wait(lambda: stack.contributors() == 1, "contribution")
    stack.checkin.withdraw(sub, "aggregate_insights")
    stack.checkin.wait(lambda: stack.contributors() == 0 and stack.contributors("mood") == 0, "retraction")
