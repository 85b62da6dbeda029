"""Forecasts through the running aggregator: the org tree, managers' scopes and triggers arrive over
real NATS, the released history is constructed in the aggregator's own database (its weekly
releases are tested in test_system.py), the forecast job runs as the scheduler runs it, the event
goes out on the AGGREGATOR stream, and HR and managers read it over HTTP."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlmodel import Session, select

from services.aggregator.clock import Clock
from services.aggregator.forecasts import tasks
from services.aggregator.org.models import OrgUnitVersion, Trigger
from shared.events.hris import TriggerAnnounced
from tests.aggregator.conftest import Stack
from tests.aggregator.test_forecasts import ORG, _history

ISSUED = "aggregator.reporting.forecast_issued.v1"


def _announce(stack: Stack, trigger_id: str, starts_on: date) -> None:
    stack.checkin.publish_as_consent(
        TriggerAnnounced(trigger_id=trigger_id, kind="deadline", org_units=["dept"], starts_on=starts_on,
                         label="Quarter close")
    )  # fmt: skip


def _triggers(stack: Stack) -> int:
    with Session(stack.aggregator.runtime.engine) as session:
        return len(session.exec(select(Trigger)).all())


def _units(stack: Stack) -> int:
    with Session(stack.aggregator.runtime.engine) as session:
        return len(session.exec(select(OrgUnitVersion)).all())


def _run(stack: Stack, offset_days: int) -> int:
    return tasks.forecast_job(stack.aggregator.runtime, stack.aggregator.settings, Clock(offset_days))


def test_hr_and_managers_read_forecasts_before_a_deadline_and_the_hit_rate_after_it(stack: Stack):
    offset = stack.aggregator.settings.clock_offset_days
    today = stack.aggregator.app.state.clock.now().date()
    upcoming = today + timedelta(days=29)
    past = [upcoming - timedelta(days=91 * i) for i in range(1, 5)]
    stack.org(ORG)
    stack.manager_of("boss-a", "team-a")
    stack.manager_of("boss-b", "team-b")
    stack.manager_of("boss-d", "dept")
    for i, day in enumerate(past):
        _announce(stack, f"close-{i}", day)
    _announce(stack, "close-next", upcoming)
    stack.checkin.wait(lambda: _triggers(stack) == 5 and _units(stack) == len(ORG), "the tree and triggers over NATS")
    with Session(stack.aggregator.runtime.engine) as session:
        _history(
            session, {"team-a": -20.0, "dept": -10.0}, until=today - timedelta(days=7), deadlines=past,
            start=past[-1] - timedelta(days=70), new_from=past[0] + timedelta(days=21),
        )  # fmt: skip

    assert _run(stack, offset) > 0
    published = stack.checkin.wait_stream("AGGREGATOR", ISSUED, count=3)
    issued = {json.loads(body)["org_unit"]: json.loads(body) for _, body in published}
    assert set(issued) == {"team-a", "dept", "team-new"}
    assert issued["team-a"]["trigger_id"] == "close-next" and issued["team-a"]["past_triggers"] == 4

    hr = stack.get("/v1/insights", "hr-1", "hr_analyst", lang="fr")
    assert hr.status_code == 200, hr.text
    ahead = {i["org_unit"]: i for i in hr.json()["insights"] if i["kind"] == "forecast"}
    assert set(ahead) == {"team-a", "dept", "team-new"}
    a = ahead["team-a"]
    low, high = a["interval_95"]
    assert low <= -20 <= high < 0 and a["trigger"]["starts_on"] == upcoming.isoformat()
    assert a["advise_on"] == (upcoming - timedelta(days=14)).isoformat() and a["suggestion_code"] == "workload_review"
    assert a["suggestion"].startswith(f"À partir du {a['advise_on']}, 14 jours avant l'échéance “Quarter close”")
    assert a["forecast_id"] == issued["team-a"]["forecast_id"] and ahead["team-new"]["based_on"] == "dept"
    withheld = {(w["org_unit"], w["reason"]) for w in hr.json()["forecasts_withheld"]}
    assert {("team-b", "within_noise"), ("team-small", "not_reportable")} <= withheld

    mine = stack.get("/v1/insights", "boss-a", "manager").json()
    assert mine["view"] == "manager" and [i["org_unit"] for i in mine["insights"] if i["kind"] == "forecast"] == [
        "team-a"
    ]
    # team-new's weeks were released at k = 5 only: a manager of dept never sees its forecast.
    dept = stack.get("/v1/insights", "boss-d", "manager").json()
    assert {i["org_unit"] for i in dept["insights"] if i["kind"] == "forecast"} == {"team-a", "dept"}
    assert ("team-new", "not_reportable") in {(w["org_unit"], w["reason"]) for w in dept["forecasts_withheld"]}
    other = stack.get("/v1/insights", "boss-b", "manager").json()
    assert [i for i in other["insights"] if i["kind"] == "forecast"] == []
    assert {(w["org_unit"], w["reason"]) for w in other["forecasts_withheld"]} == {("team-b", "within_noise")}
    bad = stack.get("/v1/insights", "hr-1", "hr_analyst", lang="de")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert stack.get("/v1/program-metrics", "hr-1", "hr_analyst").json()["forecasts"]["hit_rate"] is None

    # The deadline passes and its weeks are released: the job scores each forecast.
    after = upcoming + timedelta(days=10)
    with Session(stack.aggregator.runtime.engine) as session:
        _history(
            session, {"team-a": -20.0, "dept": -10.0}, until=after - timedelta(days=7), deadlines=[upcoming], seed=2,
            start=today, new_from=past[0] + timedelta(days=21),
        )  # fmt: skip
    _run(stack, offset + (after - today).days)
    scores = stack.get("/v1/program-metrics", "hr-1", "hr_analyst").json()["forecasts"]
    assert scores == {"scored": 3, "hits": 2, "misses": 1, "unscorable": 0, "within_interval": 2, "hit_rate": 0.667}
    assert stack.get("/v1/program-metrics", "boss-a", "manager").json()["forecasts"]["hit_rate"] == 1.0
    scored = stack.get("/v1/insights", "hr-1", "hr_analyst").json()["insights"]
    outcome = next(i for i in scored if i["kind"] == "forecast" and i["org_unit"] == "team-a")["outcome"]
    assert outcome["result"] == "hit" and outcome["within_interval"] is True
