"""Forecasts before announced triggers: the estimator on its own, then constructed released
histories on a real database (SQLite or PostgreSQL) through the service functions the job runs."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.aggregator.access import View
from services.aggregator.forecasts import estimator
from services.aggregator.forecasts import service as forecasts
from services.aggregator.forecasts.estimator import Effect, Point
from services.aggregator.forecasts.models import Forecast
from services.aggregator.insights import playbook
from services.aggregator.insights import service as insights
from services.aggregator.insights.models import Insight
from services.aggregator.org import service as org
from services.aggregator.releases.models import Release, ReleasedCell
from services.aggregator.weeks import week_bounds, week_of
from shared.bus.outbox import OutboxMessage
from shared.db import make_engine, run_migrations
from shared.errors import BadRequest
from shared.events.hris import OrgUnitChanged, TriggerAnnounced
from shared.pagination import PageRequest, encode_cursor
from shared.release.noise import Z95
from shared.webhooks.models import WebhookDelivery, WebhookSubscription

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "aggregator" / "migrations"
HALF = 4.0  # 95% half-width of every constructed weekly mean (noise sd 2.04)
PAST_DEADLINES = [date(2025, 9, 30), date(2025, 12, 19), date(2026, 3, 31), date(2026, 6, 30)]
UPCOMING = date(2026, 9, 30)
TODAY = date(2026, 9, 1)  # the latest released week is the one before
ORG = {"dept": None, "team-a": "dept", "team-b": "dept", "team-new": "dept", "team-small": "dept"}


# --- the estimator alone -------------------------------------------------------------------------


def test_the_window_is_the_week_before_through_the_end_and_the_baseline_the_four_weeks_before():
    base, during = estimator.window(date(2025, 9, 30), None)  # a Tuesday
    assert during == ["2025-W39", "2025-W40"] and base == ["2025-W35", "2025-W36", "2025-W37", "2025-W38"]
    _, longer = estimator.window(date(2025, 9, 30), date(2025, 10, 14))
    assert longer == ["2025-W39", "2025-W40", "2025-W41", "2025-W42"]


def test_an_effect_needs_a_released_mean_on_both_sides_and_carries_their_noise():
    base, during = estimator.window(date(2025, 9, 30), None)
    series = {w: Point(70.0, Z95, True) for w in base} | {during[0]: Point(50.0, 2 * Z95, False)}
    e = estimator.effect(series, date(2025, 9, 30), None)
    assert e is not None and e.change == pytest.approx(-20) and not e.manager
    assert e.variance == pytest.approx(4 / 1 + 4 * 1 / 16)  # sd 2 in one window week; 4 base weeks of sd 1
    assert estimator.effect({w: Point(70, 1, True) for w in base}, date(2025, 9, 30), None) is None


def test_fewer_than_three_past_triggers_give_no_estimate():
    assert estimator.combine([Effect(-20, 1, True)] * 2) is None
    assert estimator.combine([Effect(-20, 1, True)] * 3) is not None


def test_the_interval_never_falls_below_the_dp_noise_even_when_past_effects_agree_exactly():
    est = estimator.combine([Effect(-10, 4.0, True)] * 4)  # no spread at all: the noise sets the width
    assert est is not None and est.change == -10
    assert est.high - est.low == pytest.approx(2 * 3.182 * (4.0 * 1.25) ** 0.5)
    spread = estimator.combine([Effect(-30, 0.01, True), Effect(-10, 0.01, True), Effect(-20, 0.01, True)])
    assert spread is not None and spread.high - spread.low == pytest.approx(2 * 4.303 * (100 * (1 + 1 / 3)) ** 0.5)


def test_adverse_means_down_for_wellbeing_and_up_for_meeting_hours():
    down = estimator.Estimate(-5, -8, -2, 4, True)
    assert estimator.is_adverse(down, "who5_index") and not estimator.is_adverse(down, "meeting_hours_per_day")
    up = estimator.Estimate(1, 0.5, 1.5, 4, True)
    assert estimator.is_adverse(up, "meeting_hours_per_day") and not estimator.is_adverse(up, "mood")
    assert not estimator.is_adverse(estimator.Estimate(-5, -12, 2, 4, True), "who5_index")
    assert estimator.scored(Effect(-10, 4, True), "who5_index") and not estimator.scored(Effect(-3, 4, True), "mood")


def test_the_interval_covers_a_known_effect_at_about_the_nominal_rate():
    """Simulated released series (true effect -8, noise sd 2.04 per weekly mean, 4 past triggers)."""
    rng, covered, raised = random.Random(7), 0, 0
    runs = 400
    for _ in range(runs):
        effects = [_simulated_effect(rng, -8.0) for _ in range(4)]
        est = estimator.combine(effects)
        assert est is not None
        nxt = _simulated_effect(rng, -8.0).change
        covered += est.low <= nxt <= est.high
        raised += estimator.is_adverse(est, "who5_index")
    assert covered / runs >= 0.93 and raised / runs > 0.8


def _simulated_effect(rng: random.Random, true: float) -> Effect:
    sd = HALF / Z95
    base, during = estimator.window(date(2026, 3, 31), None)
    series = {w: Point(70 + rng.gauss(0, sd), HALF, True) for w in base}
    series |= {w: Point(70 + true + rng.gauss(0, sd), HALF, True) for w in during}
    e = estimator.effect(series, date(2026, 3, 31), None)
    assert e is not None
    return e


# --- constructed histories on a real database ----------------------------------------------------


@pytest.fixture
def session(db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def _announce(session: Session, trigger_id: str, starts_on: date, kind: str = "deadline", unit: str = "dept") -> None:
    org.on_trigger(
        session,
        TriggerAnnounced(trigger_id=trigger_id, kind=kind, org_units=[unit], starts_on=starts_on, label="Q close"),
    )


def _history(
    session: Session, effects: dict[str, float], until: date, deadlines: list[date], seed: int = 1,
    start: date = date(2025, 7, 1), new_from: date = date(2026, 7, 1), k5_only: tuple[str, ...] = ("team-new",),
) -> None:  # fmt: skip
    """Weekly released WHO-5 means from ``start`` up to ``until``: 70, plus each unit's effect in
    the windows of ``deadlines``, plus Gaussian noise of the stated half-width. ``team-new`` starts at
    ``new_from``; ``team-small`` is suppressed (below k) from then on; ``team-b`` has no effect."""
    for unit, parent in ORG.items():
        org.on_unit_changed(
            session, OrgUnitChanged(org_unit=unit, parent=parent, state="active", effective_from=date(2020, 1, 1))
        )
    rng = random.Random(seed)
    windows = {w for d in deadlines for w in estimator.window(d, None)[1]}
    monday = week_bounds(week_of(start))[0]
    while monday <= until:
        week = week_of(monday)
        if session.get(Release, week) is None:
            session.add(Release(iso_week=week, released_at=datetime.now(UTC), k=5, manager_k=10))
        for unit, parent in ORG.items():
            if unit == "team-new" and monday < new_from:
                continue
            released = not (unit == "team-small" and monday >= new_from)
            mean = 70 + (effects.get(unit, 0.0) if week in windows else 0.0) + rng.gauss(0, HALF / Z95)
            session.merge(
                ReleasedCell(
                    iso_week=week, metric="who5_index", org_unit=unit, parent=parent, released=released,
                    reason=None if released else "below_k", manager_released=released and unit not in k5_only,
                    manager_reason=None, count=30 if released else None, mean=mean if released else None,
                    mean_half_width=HALF if released else None,
                )
            )  # fmt: skip
        monday += timedelta(weeks=1)
    session.commit()


def _now(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def _rows(session: Session) -> dict[str, Forecast]:
    return {f.org_unit: f for f in session.exec(select(Forecast).where(Forecast.trigger_id == "q3-close")).all()}


def _read(session: Session, today: date, view: View, lang: str, book: playbook.Playbook, limit: int = 2):
    """Every forecast and withheld assessment ``GET /v1/insights`` lists, walked ``limit`` at a time."""
    shown, withheld, cursor = [], [], None
    while True:
        page = insights.read(session, today, view, lang, book, PageRequest(limit, cursor))
        assert len(page.insights) + len(page.forecasts_withheld) <= limit
        shown += [i for i in page.insights if i.kind == "forecast"]
        withheld += page.forecasts_withheld
        if (cursor := page.next_cursor) is None:
            return shown, withheld


EFFECTS = {"team-a": -20.0, "dept": -10.0, "team-small": -20.0}


def _forecast(session: Session, k5_only: tuple[str, ...] = ("team-new",)) -> dict[str, Forecast]:
    for i, day in enumerate(PAST_DEADLINES):
        _announce(session, f"q{i}-past", day)
    _announce(session, "q3-close", UPCOMING)
    _history(session, EFFECTS, until=TODAY - timedelta(days=7), deadlines=PAST_DEADLINES, k5_only=k5_only)
    forecasts.run(session, _now(TODAY))
    session.commit()
    return _rows(session)


def test_a_known_drop_around_past_deadlines_raises_a_forecast_with_an_interval_containing_it(session):
    wanted = json.dumps(["aggregate.forecast.published"])
    session.add(WebhookSubscription(url="https://hr.example.com/in", event_types_json=wanted, secret_ciphertext="x"))
    rows = _forecast(session)
    a = rows["team-a"]
    assert a.status == "raised" and a.based_on == "team-a" and a.past_triggers == 4
    assert a.change_low is not None and a.change_high is not None and a.expected_change is not None
    assert a.change_low <= -20 <= a.change_high < 0 and a.expected_change == pytest.approx(-20, abs=4)
    assert a.advise_on == UPCOMING - timedelta(days=14) and a.suggestion == "workload_review"
    # Published once, in the same transaction, with the figures as stored.
    events = [json.loads(m.payload) for m in session.exec(select(OutboxMessage)).all()]
    issued = [e for e in events if e["type"] == "aggregator.reporting.forecast_issued.v1"]
    assert {e["org_unit"] for e in issued} == {"team-a", "dept", "team-new"}
    mine = next(e for e in issued if e["org_unit"] == "team-a")
    assert (mine["change_low"], mine["change_high"], mine["past_triggers"]) == (a.change_low, a.change_high, 4)
    hooks = [json.loads(d.payload)["data"] for d in session.exec(select(WebhookDelivery)).all()]
    assert sorted(h["org_unit"] for h in hooks) == ["dept", "team-a", "team-new"]  # the HR tool's copy
    # Running again after no new release changes nothing and publishes nothing more.
    forecasts.run(session, _now(TODAY + timedelta(days=1)))
    session.commit()
    assert len(session.exec(select(OutboxMessage)).all()) == len(events)


def test_triggers_closer_together_than_the_baseline_keep_each_others_windows_out_of_it(session):
    """A deadline every three weeks: each baseline would hold the previous deadline's two weeks."""
    upcoming = date(2026, 9, 15)
    past = [upcoming - timedelta(weeks=3 * i) for i in range(4, 0, -1)]
    for i, day in enumerate(past):
        _announce(session, f"q{i}-past", day)
    _announce(session, "q3-close", upcoming)
    _history(session, EFFECTS, until=TODAY - timedelta(days=7), deadlines=past, start=date(2026, 3, 2))
    forecasts.run(session, _now(TODAY))
    session.commit()
    a = _rows(session)["team-a"]
    assert a.status == "raised" and a.past_triggers == 4
    assert a.expected_change == pytest.approx(-20, abs=4)  # -12.5 with the previous windows in the baselines
    assert a.change_low is not None and a.change_low <= -20 <= (a.change_high or 0)
    # Scored the same way: the upcoming deadline's baseline also leaves the last one's window out.
    after = upcoming + timedelta(days=10)
    _history(session, EFFECTS, until=after - timedelta(days=7), deadlines=[upcoming], seed=2, start=TODAY)
    forecasts.run(session, _now(after))
    session.commit()
    scored = _rows(session)["team-a"]
    assert scored.outcome == "hit" and scored.within_interval is True
    assert scored.observed_change == pytest.approx(-20, abs=4)


def test_no_effect_no_forecast(session):
    b = _forecast(session)["team-b"]
    assert b.status == "within_noise" and b.past_triggers == 4
    assert b.change_low is not None and b.change_high is not None and b.change_low < 0 < b.change_high


def test_a_new_unit_rests_on_its_parent_and_a_unit_below_k_gets_none(session):
    rows = _forecast(session)
    new = rows["team-new"]
    assert new.status == "raised" and new.based_on == "dept" and new.past_triggers == 4
    assert new.change_low is not None and new.change_high is not None and new.change_low <= -10 <= new.change_high
    small = rows["team-small"]  # a strong past effect of its own, but suppressed in the latest release
    assert small.status == "not_reportable" and small.expected_change is None


def test_too_few_past_triggers_give_no_forecast_and_say_so(session):
    for i, day in enumerate(PAST_DEADLINES[2:]):
        _announce(session, f"q{i}-past", day)
    _announce(session, "q3-close", UPCOMING)
    _history(session, EFFECTS, until=TODAY - timedelta(days=7), deadlines=PAST_DEADLINES[2:])
    forecasts.run(session, _now(TODAY))
    session.commit()
    a = _rows(session)["team-a"]
    assert a.status == "too_few_past_triggers" and a.past_triggers == 2 and a.expected_change is None
    read, withheld = _read(session, TODAY, View(False, None), "en", playbook.load())
    assert read == [] and ("team-a", "too_few_past_triggers", 2) in {
        (w.org_unit, w.reason, w.past_triggers) for w in withheld
    }


def test_the_api_view_times_the_suggestion_in_three_languages_and_managers_see_only_k_ten(session):
    _forecast(session)
    book = playbook.load()
    hr, _ = _read(session, TODAY, View(False, None), "es", book)
    assert {f.org_unit for f in hr} == {"team-a", "dept", "team-new"}
    a = next(f for f in hr if f.org_unit == "team-a")
    assert a.kind == "forecast" and a.trigger.trigger_id == "q3-close" and a.trigger.starts_on == UPCOMING
    assert a.suggestion.startswith("A partir del 2026-09-16, 14 días antes de la fecha límite “Q close”")
    assert a.suggestion.endswith(book.text("workload_review", "es"))
    fr, _ = _read(session, TODAY, View(False, None), "fr", book)
    assert next(f for f in fr if f.org_unit == "team-a").suggestion.startswith("À partir du 2026-09-16, 14 jours avant")
    # A manager of dept: team-new's cells were not released at k = 10, so its forecast is withheld.
    mine, withheld = _read(session, TODAY, View(True, ("dept",)), "en", book)
    assert {f.org_unit for f in mine} == {"team-a", "dept"}
    assert ("team-new", "not_reportable") in {(w.org_unit, w.reason) for w in withheld}
    theirs, _ = _read(session, TODAY, View(True, ("team-b",)), "en", book)
    assert theirs == []


def test_after_the_period_each_forecast_is_scored_against_what_was_released(session):
    _forecast(session)
    # The deadline comes: team-a drops as forecast, team-new (forecast from dept) does not.
    after = UPCOMING + timedelta(days=10)
    _history(
        session, {"team-a": -20.0, "dept": -10.0}, until=after - timedelta(days=7), deadlines=[UPCOMING], seed=2,
        start=TODAY,
    )  # fmt: skip
    assert forecasts.score_passed(session, UPCOMING, _now(UPCOMING)) == 0  # not over yet
    forecasts.run(session, _now(after))
    session.commit()
    rows = _rows(session)
    assert rows["team-a"].outcome == "hit" and rows["team-a"].within_interval is True
    assert rows["team-a"].observed_change == pytest.approx(-20, abs=4)
    assert rows["team-new"].outcome == "miss" and rows["team-new"].within_interval is False
    scores = forecasts.scores(session, after, View(False, None))
    assert (scores.scored, scores.hits, scores.misses, scores.hit_rate) == (3, 2, 1, 0.667)
    assert forecasts.scores(session, after, View(True, ("team-a",))).hit_rate == 1.0


def test_a_manager_gets_no_reason_resting_on_figures_released_below_their_k(session):
    _forecast(session, k5_only=("team-new", "team-b"))
    _, hr = _read(session, TODAY, View(False, None), "en", playbook.load())
    assert ("team-b", "within_noise", 4) in {(w.org_unit, w.reason, w.past_triggers) for w in hr}
    _, mine = _read(session, TODAY, View(True, ("team-b",)), "en", playbook.load())
    assert [(w.org_unit, w.reason, w.past_triggers) for w in mine] == [("team-b", "not_reportable", 0)]


def test_insights_pages_walk_forecasts_then_detected_changes_once_each_in_order(session):
    _forecast(session)
    for n, (week, unit) in enumerate([("2026-W30", "team-b"), ("2026-W31", "team-a"), ("2026-W31", "dept")]):
        session.add(
            Insight(
                insight_id=f"{n:032x}", kind="drop", org_unit=unit, metric="who5_index", iso_week=week, change=-9.0,
                change_low=-12.0, change_high=-6.0, manager_visible=True, suggestion="workload_review",
                detected_at=_now(TODAY),
            )
        )  # fmt: skip
    session.commit()
    view, book = View(False, None), playbook.load()
    whole = insights.read(session, TODAY, view, "en", book, PageRequest(200, None))
    assert whole.next_cursor is None
    walked, withheld, cursor, pages = [], [], None, 0
    while True:
        page = insights.read(session, TODAY, view, "en", book, PageRequest(2, cursor))
        walked += page.insights
        withheld += page.forecasts_withheld
        pages += 1
        if (cursor := page.next_cursor) is None:
            break
    assert walked == whole.insights and withheld == whole.forecasts_withheld
    entries = len(walked) + len(withheld)
    assert entries > 4 and pages == (entries + 1) // 2
    kinds = [i.kind for i in walked]
    assert kinds == sorted(kinds, key=lambda k: k != "forecast")  # forecasts first
    assert [i.iso_week for i in walked if i.kind == "drop"] == ["2026-W31", "2026-W31", "2026-W30"]
    for cursor in (
        "bm90LWEtY3Vyc29y",
        encode_cursor("elsewhere", "a", "b", "c", "d"),
        encode_cursor("forecast", "x", "a", "b", "c"),
    ):
        with pytest.raises(BadRequest):
            insights.read(session, TODAY, view, "en", book, PageRequest(2, cursor))
