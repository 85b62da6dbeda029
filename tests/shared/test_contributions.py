"""The shared producer of contributions on a real database (SQLite or PostgreSQL, per the run):
holding, once-a-week counters, retraction, and the tiny-unit roll-up at release."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.recommender.engagement.models import CONTRIBUTIONS as P
from shared.bus.outbox import OutboxMessage
from shared.crypto import period_token
from shared.db import make_engine, run_migrations
from shared.events.consent import ConsentChange, Purpose
from shared.events.hris import OrgUnitChanged, SubjectAssigned

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "recommender" / "migrations"
KEY = b"k" * 32
TODAY = datetime.now(UTC).date()
SINCE = date(2020, 1, 1)


@pytest.fixture
def engine(make_db_url) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    url = make_db_url("contributions")
    run_migrations(url, MIGRATIONS)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _people(session: Session, unit: str, n: int) -> list[str]:
    out = [secrets.token_hex(32) for _ in range(n)]
    for p in out:
        P.on_subject(session, SubjectAssigned(pseudonym=p, org_unit=unit, effective_from=SINCE))
    return out


def _released(session: Session) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(m.payload) for m in session.exec(select(OutboxMessage)).scalars()]  # type: ignore[call-overload]


def _held(session: Session) -> int:
    return len(session.execute(select(P.tables.pending)).all())


def test_release_rolls_tiny_units_up_and_drops_what_has_no_big_enough_ancestor(engine):
    with Session(engine) as session:
        for unit, parent in {"dept": None, "tiny": "dept", "big": "dept", "island": None}.items():
            P.on_org_unit(session, OrgUnitChanged(org_unit=unit, parent=parent, state="active", effective_from=SINCE))
        big, tiny, island = (
            _people(session, "big", 5),
            _people(session, "tiny", 2),
            _people(session, "island", 1),
        )
        for p in (big[0], tiny[0], island[0]):
            assert P.hold(session, KEY, p, TODAY, [("resource_viewed", 1.0)])
        assert not P.hold(session, KEY, secrets.token_hex(32), TODAY, [("resource_viewed", 1.0)])  # no unit
        assert P.release(session, 5, lambda: None) == 2
        units = {c["period_token"]: c["org_unit"] for c in _released(session)}
        assert units == {period_token(KEY, big[0], _week()): "big", period_token(KEY, tiny[0], _week()): "dept"}
        assert _held(session) == 0  # the island's was dropped, not kept


def _week() -> str:
    year, week, _ = TODAY.isocalendar()
    return f"{year}-W{week:02d}"


def test_counters_count_once_a_week_and_withdrawal_leaves_only_a_retraction(engine):
    with Session(engine) as session:
        (p,) = _people(session, "big", 1)
        for _ in range(3):
            P.hold(session, KEY, p, TODAY, [("resource_viewed", 1.0)], once=True)
        assert _held(session) == 1
        P.on_consent_changed(
            session,
            KEY,
            ConsentChange(p, Purpose.aggregate_insights, "withdrawn", datetime.now(UTC), 1),
        )
        rows = session.execute(select(P.tables.pending)).all()
        assert [json.loads(r.payload)["type"] for r in rows] == ["contribution.aggregate.retracted.v1"]
        assert rows[0].period_token == period_token(KEY, p, _week())


def test_a_unit_counts_its_members_on_the_weeks_monday(engine):
    with Session(engine) as session:
        staff = _people(session, "team", 5)
        # Two of them move away from next Monday on: this week's team still has 5.
        for p in staff[:2]:
            P.on_subject(
                session,
                SubjectAssigned(
                    pseudonym=p, org_unit="elsewhere", effective_from=TODAY + timedelta(days=7 - TODAY.weekday())
                ),
            )
        P.hold(session, KEY, staff[4], TODAY, [("resource_viewed", 1.0)])
        assert P.release(session, 5, lambda: None) == 1
        assert _released(session)[0]["org_unit"] == "team"
