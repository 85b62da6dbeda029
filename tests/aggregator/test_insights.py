"""Change detection on released series, trigger correlation and the playbook (real database,
the aggregator's own service functions: contributions in, weekly releases, insights out)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from services.aggregator.access import View
from services.aggregator.contributions import service as contributions
from services.aggregator.insights import playbook
from services.aggregator.insights import service as insights
from services.aggregator.org import service as org
from services.aggregator.releases import service as releases
from services.aggregator.releases.models import ReleasedCell
from services.aggregator.weeks import week_bounds
from shared.db import make_engine, run_migrations
from shared.events.contribution import ContributionRecorded
from shared.events.hris import OrgUnitChanged, TriggerAnnounced
from shared.pagination import PageRequest
from tests.aggregator.conftest import QUIET

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "aggregator" / "migrations"
WEEKS = ["2026-W10", "2026-W11", "2026-W12"]
ALL = PageRequest(limit=200, cursor=None)


@pytest.fixture
def session(db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


@pytest.fixture
def exact(monkeypatch):
    """Releases without noise, so a test can assert exact changes: the detectors' behaviour
    against noise is tested on constructed cells below, the noise itself in tests/shared."""

    def centred(rho, low, high, totals, counts):
        mid = (low + high) / 2
        return [float(t - c * mid) for t, c in zip(totals, counts, strict=True)]

    monkeypatch.setattr(releases, "noisy_counts", lambda rho, counts: [int(c) for c in counts])
    monkeypatch.setattr(releases, "noisy_centred_sums", centred)


def _token(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _week(session: Session, week: str, values: dict[str, list[float]]) -> None:
    for unit, who5 in values.items():
        for i, value in enumerate(who5):
            event = ContributionRecorded(
                source="checkin", org_unit=unit, iso_week=week, metric="who5_index", value=value,
                period_token=_token(unit, i, week),
            )  # fmt: skip
            contributions.record(session, event)
    releases.release_week(session, week, QUIET, datetime.now(UTC))
    session.commit()


def _org(session: Session, deadline_on: date | None) -> None:
    for unit, parent in {"dept": None, "team-a": "dept", "team-b": "dept"}.items():
        org.on_unit_changed(
            session, OrgUnitChanged(org_unit=unit, parent=parent, state="active", effective_from=date(2020, 1, 1))
        )
    if deadline_on is not None:
        org.on_trigger(
            session,
            TriggerAnnounced(trigger_id="q1-close", kind="deadline", org_units=["team-a"], starts_on=deadline_on,
                             label="Q1 close"),
        )  # fmt: skip
    session.commit()


def test_a_drop_beyond_the_noise_names_the_unit_the_trigger_and_a_suggestion(session, exact):
    _org(session, deadline_on=week_bounds(WEEKS[2])[0] + timedelta(days=3))
    steady = {"team-a": [70.0] * 12, "team-b": [60.0] * 12}
    _week(session, WEEKS[0], steady)
    _week(session, WEEKS[1], steady)
    _week(session, WEEKS[2], {"team-a": [40.0] * 12, "team-b": [60.0] * 12})  # team-a falls by 30

    read = insights.read(session, date(2026, 4, 1), View(managers=False, roots=None), "es", playbook.load(), ALL)
    found = {(i.org_unit, i.kind) for i in read.insights}
    assert ("team-a", "drop") in found and not any(unit == "team-b" for unit, _ in found)
    drop = next(i for i in read.insights if i.org_unit == "team-a")
    low, high = drop.interval_95
    assert drop.change == pytest.approx(-30) and low < -30 < high < 0  # the interval is the noise's, not zero
    assert drop.trigger is not None and drop.trigger.trigger_id == "q1-close" and drop.trigger.kind == "deadline"
    assert drop.suggestion_code == "workload_review"
    assert (
        drop.suggestion
        == playbook.load().text("workload_review", "es")
        != playbook.load().text("workload_review", "fr")
    )
    # Managers' view: team-a had 12 contributors, above the managers' k of 10 in both weeks.
    mine = insights.read(session, date(2026, 4, 1), View(managers=True, roots=("team-a",)), "fr", playbook.load(), ALL)
    assert {i.org_unit for i in mine.insights} == {"team-a"}
    assert (
        insights.read(
            session, date(2026, 4, 1), View(managers=True, roots=("team-b",)), "en", playbook.load(), ALL
        ).insights
        == []
    )


def test_an_untriggered_drop_gets_the_default_suggestion(session, exact):
    _org(session, deadline_on=None)
    _week(session, WEEKS[0], {"team-a": [70.0] * 12, "team-b": [60.0] * 12})
    _week(session, WEEKS[1], {"team-a": [70.0] * 12, "team-b": [30.0] * 12})
    found = insights.read(session, date(2026, 4, 1), View(False, None), "en", playbook.load(), ALL).insights
    drop = next(i for i in found if i.org_unit == "team-b")
    assert drop.trigger is None and drop.suggestion_code == "team_conversation"


def _cell(week: str, mean: float, half: float) -> ReleasedCell:
    return ReleasedCell(
        iso_week=week, metric="who5_index", org_unit="u", released=True, manager_released=True, mean=mean,
        mean_half_width=half,
    )  # fmt: skip


def test_changes_the_noise_explains_raise_nothing():
    assert insights._drop([_cell("2026-W01", 70, 5), _cell("2026-W02", 63, 5)], "who5_index") is None  # 7 < 7.07
    assert insights._drop([_cell("2026-W01", 70, 5), _cell("2026-W02", 62, 5)], "who5_index") is not None
    assert insights._drop([_cell("2026-W01", 70, 1), _cell("2026-W02", 80, 1)], "who5_index") is None  # a rise
    rising_meetings = [_cell("2026-W01", 3, 0.1), _cell("2026-W02", 5, 0.1)]
    assert insights._drop(rising_meetings, "meeting_hours_per_day") is not None  # higher is worse there
    slide = [_cell(f"2026-W0{i}", 70 - 1.5 * i, 1.5) for i in range(1, 7)]
    assert all(insights._drop(slide[i - 1 : i + 1], "who5_index") is None for i in range(1, 6))  # no single week
    drift = insights._drift(slide, "who5_index")
    assert drift is not None and drift[0] == "drift" and drift[1] == pytest.approx(-7.5)
    assert insights._drift([_cell(f"2026-W0{i}", 70, 1.0) for i in range(1, 7)], "who5_index") is None


def test_a_playbook_missing_a_language_is_refused():
    with pytest.raises(ValueError, match="lacks"):
        playbook.Playbook.model_validate(
            {"rules": [{"trigger_kind": None, "code": "x"}], "texts": {"x": {"en": "a", "es": "b"}}}
        )
