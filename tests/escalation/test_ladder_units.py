"""The ladder's rules with a fake clock: timers are polled with the time passed in.

Real database (SQLite or PostgreSQL per KINWELL_TEST_DATABASE_URL), the service's own migrations,
no NATS: the case functions are called as the consumer and endpoints call them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.escalation.cases import service
from services.escalation.cases.models import Case
from services.escalation.cases.schemas import Resolution
from services.escalation.config import EscalationSettings
from services.escalation.deps import EscalationContext
from services.escalation.ladder import repository as ladder_repo
from services.escalation.ladder.models import CasePage, CaseTimer
from services.escalation.ladder.schemas import Rosters
from services.escalation.ladder.service import on_call
from services.escalation.ladder.tasks import fire_due
from shared.db import make_engine, run_migrations
from shared.settings import PlatformSettings
from shared.webhooks import WebhookDelivery, WebhookSubscription
from tests.escalation.conftest import FAST_POLICY, flag

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "escalation" / "migrations"
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday
SLOW = {
    "rules": [
        {"targets": [{"roster": "team"}], "ack_delay_seconds": {"imminent": 300, "high": 1800, "moderate": 7200}},
        {"targets": [{"counsellor": "lead"}], "ack_delay_seconds": {"imminent": 300, "high": 1800, "moderate": 7200}},
    ],
    "loops": 2,
    "crisis_service": True,
    "contact_timeout_seconds": {"imminent": 1800, "high": 3600, "moderate": 86400},
}
ROSTERS = {
    "rosters": [
        {
            "name": "team",
            "timezone": "America/New_York",
            "shifts": [
                {
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                    "start": "09:00",
                    "end": "17:00",
                    "members": ["day-a", "day-b"],
                    "mode": "round_robin",
                },
                {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": "17:00",
                    "end": "09:00",
                    "members": ["night"],
                },
            ],
        }
    ]
}


@pytest.fixture
def ctx(make_db_url, tmp_path):  # type: ignore[no-untyped-def]
    url = make_db_url("escalation")
    run_migrations(url, MIGRATIONS)
    settings = EscalationSettings(database_url=url, platform=PlatformSettings(data_dir=tmp_path / "d"))
    context = EscalationContext.from_settings(settings)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(
            WebhookSubscription(
                url="https://pager.example/x",
                event_types_json=_json(["escalation.page.triggered", "escalation.page.external"]),
                secret_ciphertext="x",
            )
        )
        ladder_repo.put_config(session, "policy", _json(SLOW), T0, "admin")
        ladder_repo.put_config(session, "rosters", _json(ROSTERS), T0, "admin")
        session.commit()
    context.runtime = engine  # the tests' handle on the engine
    yield context
    engine.dispose()


def _json(doc: object) -> str:
    return json.dumps(doc)


def _open(ctx, severity="critical", at=T0):  # type: ignore[no-untyped-def]
    with Session(ctx.runtime) as session:
        case = service.open_from_flag(session, ctx, flag("a" * 64, severity, checkin_ref=uuid.uuid4()), at)
        session.commit()
        return case.id


def _pages(ctx, case_id):  # type: ignore[no-untyped-def]
    with Session(ctx.runtime) as session:
        rows = session.exec(select(CasePage).where(CasePage.case_id == case_id)).all()
        return sorted((p.round, p.step) for p in rows)


def _deliveries(ctx):  # type: ignore[no-untyped-def]
    with Session(ctx.runtime) as session:
        return [d.payload for d in session.exec(select(WebhookDelivery))]


def test_unacknowledged_case_climbs_every_rule_and_loop_then_the_crisis_service(ctx):
    case_id = _open(ctx)
    assert _pages(ctx, case_id) == [(0, 0)]
    assert fire_due(ctx.runtime, T0 + timedelta(seconds=299), "c/") == 0  # not yet
    t = T0
    for step in range(1, 5):  # rule 2, then loop 2's rules 1 and 2, then the crisis service
        t += timedelta(seconds=300)
        assert fire_due(ctx.runtime, t, "c/") == 1
        assert fire_due(ctx.runtime, t, "c/") == 0  # fired once, whatever the polls
        assert _pages(ctx, case_id)[-1] == (0, step)
    assert fire_due(ctx.runtime, t + timedelta(days=1), "c/") == 0  # the ladder ended
    bodies = _deliveries(ctx)
    assert sum('"escalation.page.external"' in b for b in bodies) == 1 and len(bodies) == 5


def test_rosters_follow_their_time_zone_and_round_robin(ctx):
    rosters = Rosters.model_validate(ROSTERS)
    monday_9_30_ny = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert on_call(rosters, "team", monday_9_30_ny, 0) == ["day-a"]
    assert on_call(rosters, "team", monday_9_30_ny, 1) == ["day-b"]
    assert on_call(rosters, "team", datetime(2026, 12, 7, 13, 59, tzinfo=UTC), 0) == ["night"]  # 08:59 in NY
    assert on_call(rosters, "team", datetime(2026, 12, 12, 8, 0, tzinfo=UTC), 0) == [
        "night"
    ]  # Sat 03:00: Friday's night
    assert (
        on_call(rosters, "team", datetime(2026, 12, 12, 15, 0, tzinfo=UTC), 0) == []
    )  # Sat 10:00: nobody (paged: all)
    summer = datetime(2026, 7, 6, 13, 30, tzinfo=UTC)  # 09:30 EDT (UTC-4): the day shift
    assert on_call(rosters, "team", summer, 0) == ["day-a"]
    assert on_call(rosters, "nobody", summer, 0) == []


def test_ack_stops_paging_and_a_missed_contact_timeout_re_escalates(ctx):
    case_id = _open(ctx, "high")
    with Session(ctx.runtime) as session:
        service.acknowledge(session, case_id, "c" * 64, T0 + timedelta(seconds=60))
        session.commit()
    assert fire_due(ctx.runtime, T0 + timedelta(seconds=3599), "c/") == 0  # rule 2 was due at 1800: cancelled
    assert fire_due(ctx.runtime, T0 + timedelta(seconds=3660), "c/") == 1  # contact timeout: 3600 after the ack
    assert _pages(ctx, case_id) == [(0, 0), (1, 0)]  # a new round from rule 1
    with Session(ctx.runtime) as session:
        case = session.get(Case, case_id)
        assert case is not None and case.acked_at is None and case.round == 1
        service.acknowledge(session, case_id, "c" * 64, T0 + timedelta(seconds=3700))
        service.confirm(session, service.check_confirm(session, case_id, "c" * 64), "c" * 64, T0, "none")
        service.mark_contacted(session, case_id, "c" * 64, T0 + timedelta(seconds=3800))
        session.commit()
    assert fire_due(ctx.runtime, T0 + timedelta(days=2), "c/") == 0  # contacted: no re-escalation


def test_resolving_cancels_every_timer_and_policy_edits_leave_running_cases_alone(ctx):
    case_id = _open(ctx, "critical")
    with Session(ctx.runtime) as session:  # an admin edits the policy: 10 s delays from now on
        ladder_repo.put_config(session, "policy", _json(FAST_POLICY), T0, "admin")
        session.commit()
    assert fire_due(ctx.runtime, T0 + timedelta(seconds=10), "c/") == 0  # still its own copy: 300 s
    newer = _open(ctx, "critical")
    with Session(ctx.runtime) as session:
        case = session.get(Case, case_id)
        assert case is not None and json.loads(case.policy)["rules"][0]["ack_delay_seconds"]["imminent"] == 300
        assert session.get(Case, newer).policy != case.policy  # type: ignore[union-attr]
        service.acknowledge(session, case_id, "c" * 64, T0)
        service.confirm(session, service.check_confirm(session, case_id, "c" * 64), "c" * 64, T0, "none")
        service.resolve(session, ctx, case_id, "c" * 64, Resolution(reason="supported"), T0)
        session.commit()
        assert session.exec(select(CaseTimer).where(CaseTimer.case_id == case_id)).all() == []
    assert fire_due(ctx.runtime, T0 + timedelta(days=3), "c/") >= 1  # the newer case still runs
    assert _pages(ctx, case_id) == [(0, 0)]
