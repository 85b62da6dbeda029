"""The contributions service under one transaction per consumer batch: a later contribution of the
same token replaces the earlier one, within a transaction and across them; a retraction removes
what the same transaction recorded; a released week takes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from services.aggregator.contributions import service
from services.aggregator.contributions.models import Cell, PendingToken
from services.aggregator.releases import service as releases
from services.aggregator.releases.models import Release
from shared.db import make_engine, run_migrations
from shared.events.contribution import ContributionRecorded, ContributionRetracted
from shared.release.rules import ReleaseRules

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "aggregator" / "migrations"
WEEK = "2026-W10"


def _rec(token: str, unit: str, value: float, metric: str = "who5_index") -> ContributionRecorded:
    return ContributionRecorded(source="checkin", org_unit=unit, iso_week=WEEK, metric=metric, value=value,
                                period_token=token * 64)  # fmt: skip


def _cells(engine) -> dict[tuple[str, str], tuple[int, float]]:
    with Session(engine) as s:
        return {(c.org_unit, c.metric): (c.count, c.total) for c in s.exec(select(Cell))}


def _tokens(engine) -> dict[tuple[str, str], tuple[str, float]]:
    with Session(engine) as s:
        return {(t.period_token[0], t.metric): (t.org_unit, t.value) for t in s.exec(select(PendingToken))}


def test_replacements_and_retractions_inside_and_across_transactions(db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    with Session(engine) as s:  # one consumer batch
        service.record(s, _rec("a", "team-1", 40.0))
        service.record(s, _rec("b", "team-1", 60.0))
        service.record(s, _rec("a", "team-2", 80.0))  # the same token moved: replaces
        service.record(s, _rec("c", "team-2", 3.0, metric="mood"))
        service.retract(s, ContributionRetracted(source="checkin", org_unit="team-2", iso_week=WEEK,
                                                 period_token="c" * 64))  # fmt: skip
        s.commit()
    assert _cells(engine) == {("team-1", "who5_index"): (1, 60.0), ("team-2", "who5_index"): (1, 80.0),
                              ("team-2", "mood"): (0, 0.0)}  # fmt: skip
    assert _tokens(engine) == {("a", "who5_index"): ("team-2", 80.0), ("b", "who5_index"): ("team-1", 60.0)}
    with Session(engine) as s:  # the next batch replaces what an earlier one recorded
        service.record(s, _rec("b", "team-2", 20.0))
        s.commit()
    assert _cells(engine)[("team-1", "who5_index")] == (0, 0.0)
    assert _cells(engine)[("team-2", "who5_index")] == (2, 100.0)
    with Session(engine) as s:
        assert len(s.exec(select(PendingToken)).all()) == 2
        releases.release_week(s, WEEK, ReleaseRules(), datetime.now(UTC))
        s.commit()
    with Session(engine) as s:
        service.record(s, _rec("d", "team-1", 50.0))
        service.retract(s, ContributionRetracted(source="checkin", org_unit="team-1", iso_week=WEEK,
                                                 period_token="a" * 64))  # fmt: skip
        s.commit()
        assert s.exec(select(PendingToken)).all() == []
        assert s.exec(select(Cell)).all() == []
        assert s.get(Release, WEEK).late_dropped == 2  # type: ignore[union-attr]
    engine.dispose()


def test_a_batch_across_weeks_retracts_every_metric_and_replays_in_order(db_url):
    """Staged events are applied in the order they came: a retraction removes what came before it
    (every metric), not what comes after; a released week beside an open one drops only its own."""
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    other = "2026-W11"
    with Session(engine) as s:
        service.record(s, _rec("a", "team-1", 10.0))
        service.record(s, _rec("a", "team-1", 4.0, metric="mood"))
        s.commit()
    with Session(engine) as s:
        service.retract(s, ContributionRetracted(source="checkin", org_unit="team-1", iso_week=WEEK,
                                                 period_token="a" * 64))  # fmt: skip
        service.record(s, _rec("a", "team-3", 30.0))  # after the retraction: kept
        service.record(s, ContributionRecorded(source="checkin", org_unit="team-1", iso_week=other,
                                               metric="who5_index", value=70.0, period_token="a" * 64))  # fmt: skip
        s.commit()
    with Session(engine) as s:
        cells = {(c.iso_week, c.org_unit, c.metric): (c.count, c.total) for c in s.exec(select(Cell))}
        assert cells == {(WEEK, "team-1", "who5_index"): (0, 0.0), (WEEK, "team-1", "mood"): (0, 0.0),
                         (WEEK, "team-3", "who5_index"): (1, 30.0),
                         (other, "team-1", "who5_index"): (1, 70.0)}  # fmt: skip
        assert len(s.exec(select(PendingToken)).all()) == 2
        releases.release_week(s, WEEK, ReleaseRules(), datetime.now(UTC))
        s.commit()
    with Session(engine) as s:
        service.record(s, _rec("b", "team-1", 50.0))  # released week: dropped
        service.record(s, ContributionRecorded(source="checkin", org_unit="team-2", iso_week=other,
                                               metric="who5_index", value=90.0, period_token="a" * 64))  # fmt: skip
        s.commit()
        assert s.get(Release, WEEK).late_dropped == 1  # type: ignore[union-attr]
        cells = {(c.iso_week, c.org_unit): (c.count, c.total) for c in s.exec(select(Cell))}
        assert cells == {(other, "team-1"): (0, 0.0), (other, "team-2"): (1, 90.0)}
    engine.dispose()
