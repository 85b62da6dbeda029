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


def test_replacements_and_retractions_inside_and_across_transactions(db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    with Session(engine) as s:  # one consumer batch
        assert service.record(s, _rec("a", "team-1", 40.0)) == "recorded"
        assert service.record(s, _rec("b", "team-1", 60.0)) == "recorded"
        assert service.record(s, _rec("a", "team-2", 80.0)) == "replaced"  # the same token moved
        service.record(s, _rec("c", "team-2", 3.0, metric="mood"))
        assert (
            service.retract(
                s, ContributionRetracted(source="checkin", org_unit="team-2", iso_week=WEEK, period_token="c" * 64)
            )
            == 1
        )
        s.commit()
    assert _cells(engine) == {("team-1", "who5_index"): (1, 60.0), ("team-2", "who5_index"): (1, 80.0),
                              ("team-2", "mood"): (0, 0.0)}  # fmt: skip
    with Session(engine) as s:  # the next batch replaces what an earlier one recorded
        assert service.record(s, _rec("b", "team-2", 20.0)) == "replaced"
        s.commit()
    assert _cells(engine)[("team-1", "who5_index")] == (0, 0.0)
    assert _cells(engine)[("team-2", "who5_index")] == (2, 100.0)
    with Session(engine) as s:
        assert len(s.exec(select(PendingToken)).all()) == 2
        releases.release_week(s, WEEK, ReleaseRules(), datetime.now(UTC))
        s.commit()
    with Session(engine) as s:
        assert service.record(s, _rec("d", "team-1", 50.0)) == "late"
        s.commit()
        assert s.exec(select(PendingToken)).all() == []
    engine.dispose()
