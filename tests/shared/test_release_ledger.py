"""The zCDP budget ledger (real SQLite/PostgreSQL) and the OpenDP calibration."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, SQLModel

from shared.db import make_engine
from shared.release import ledger, noise
from shared.release.rules import ReleaseRules


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine, tables=[ledger.ReleaseBudget.__table__])  # type: ignore[list-item]
    yield engine
    engine.dispose()


_periods = itertools.count()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0.01, 0.6)), max_size=12))
def test_the_ledger_never_exceeds_its_cap(engine, asks):
    period = f"p{next(_periods)}"  # a fresh period per example: rows start empty
    granted_total = {"a": 0.0, "b": 0.0}
    for unit, rho in asks:
        with Session(engine) as session:
            if ledger.spend(session, "test", period, [unit], rho, cap=1.0):
                granted_total[unit] += rho
            session.commit()
    with Session(engine) as session:
        for unit, total in granted_total.items():
            assert ledger.spent(session, "test", period, unit) == pytest.approx(total)
            assert total <= 1.0 + 1e-9


def test_a_rolled_back_release_spends_nothing(engine):
    with Session(engine) as session:
        assert ledger.spend(session, "test", "2026-W01", ["a"], 0.9, cap=1.0) == {"a"}
        session.rollback()
    with Session(engine) as session:
        assert ledger.spend(session, "test", "2026-W01", ["a"], 0.9, cap=1.0) == {"a"}
        session.commit()
        assert ledger.spend(session, "test", "2026-W01", ["a"], 0.2, cap=1.0) == set()


def test_scales_come_from_opendp_privacy_maps():
    count = noise.count_measurement(0.05)
    assert count.scale == pytest.approx(1 / math.sqrt(2 * 0.05), rel=1e-3)  # rho = 1 / (2 s^2)
    summ = noise.sum_measurement(0.1, 0, 100)
    assert summ.scale == pytest.approx(50 / math.sqrt(2 * 0.1), rel=1e-3)
    # OpenDP's conversion is tighter than the textbook rho + 2 sqrt(rho ln(1/delta)).
    assert 1.0 < noise.epsilon(1.0, 1e-6) <= 1 + 2 * math.sqrt(math.log(1e6))


def test_rules_refuse_k_below_three_and_managers_below_k():
    with pytest.raises(ValueError):
        ReleaseRules(k=2)
    with pytest.raises(ValueError):
        ReleaseRules(k=6, manager_k=5)
    assert ReleaseRules().for_manager().k == 10
