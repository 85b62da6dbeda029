"""Consent statistics on the shared release rules (issue 11.5): the differencing attacks, on real
SQLite/PostgreSQL, through the consent service's own grant, withdrawal and HRIS functions.

Each attack reads the statistics in one ISO week, changes one person, and reads again in the same
week and in the next. Before, every reading was live and exact, so the difference was the person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from services.consent.config import ConsentSettings
from services.consent.consents.schemas import Channel, ConsentGrant
from services.consent.consents.service import grant, withdraw
from services.consent.deps import ConsentContext
from services.consent.hris import service as hris
from services.consent.stats import service as stats
from shared.db import make_engine, run_migrations
from shared.events.consent import Purpose
from shared.hris.schema import Employee, EmployeeCreated, EmployeeUpdated, OrgUnit, OrgUnitCreated
from shared.pagination import PageRequest
from shared.release.guard import DIFFERENCING
from shared.release.rules import ReleaseRules
from shared.settings import PlatformSettings

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "consent"
WEEK1 = datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday
WEEK2 = WEEK1 + timedelta(days=7)
QUIET = ReleaseRules(k=5, rho_count=8.0, rho_sum=8.0, rho_cap=100.0)  # near-exact, to see decisions


@pytest.fixture
def ctx(tmp_path, platform) -> ConsentContext:
    settings = PlatformSettings(mode="embedded", data_dir=tmp_path / "data")
    own = ConsentContext.from_settings(
        ConsentSettings(platform=settings, database_url="sqlite://", stats_release=QUIET)
    )
    # HRIS events go out sealed under each subject's event key: the running service's keyring
    # reaches the key bucket on its bus (its loop runs in another thread).
    return replace(own, event_keys=platform.consent.app.state.consent.event_keys)


@pytest.fixture
def session(db_url):
    run_migrations(db_url, PACKAGE / "migrations")
    engine = make_engine(db_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _org(session: Session, ctx: ConsentContext, units: dict[str, str | None], people: dict[str, str]) -> None:
    events = [
        OrgUnitCreated(type="org_unit.created", org_unit=OrgUnit(org_unit_id=u, parent_id=p)) for u, p in units.items()
    ]
    events += [
        EmployeeCreated(type="employee.created", employee=Employee(employee_id=e, org_unit=u))
        for e, u in people.items()
    ]
    hris.apply_events(session, ctx, events)
    session.commit()


def _move(session: Session, ctx: ConsentContext, employee_id: str, unit: str) -> None:
    hris.apply_events(
        session,
        ctx,
        [EmployeeUpdated(type="employee.updated", employee=Employee(employee_id=employee_id, org_unit=unit))],
    )
    session.commit()


def _grant(session: Session, ctx: ConsentContext, employee_id: str, *purposes: Purpose) -> None:
    for purpose in purposes:
        grant(session, ctx, employee_id, purpose, ConsentGrant(policy_version=1))
    session.commit()


def _units(session: Session, ctx: ConsentContext, now: datetime) -> dict[str, dict]:
    read = stats.consent_rates_by_org_unit(session, ctx.release_rules, now)
    session.commit()
    return {u.org_unit: u.model_dump() for u in read.org_units}


def test_seven_to_eight_people_does_not_give_the_newcomers_consents(session, ctx):
    team = {f"t{i}": "team" for i in range(7)}
    _org(
        session, ctx, {"dept": None, "team": "dept", "other": "dept"}, {**team, **{f"o{i}": "other" for i in range(9)}}
    )
    for i in range(7):
        _grant(session, ctx, f"t{i}", Purpose.checkin, *([Purpose.personalization] if i % 2 else []))
    first = _units(session, ctx, WEEK1)
    assert first["team"]["suppressed"] is False and first["team"]["group_size"] == 7

    _org(session, ctx, {}, {"newcomer": "team"})
    _grant(session, ctx, "newcomer", Purpose.checkin, Purpose.personalization, Purpose.escalation)
    assert _units(session, ctx, WEEK1 + timedelta(days=2)) == first  # same week: the stored release
    second = _units(session, ctx, WEEK2)
    assert second["team"]["suppressed"] is True and second["team"]["reason"] == DIFFERENCING
    assert second["dept"]["suppressed"] is True  # dept changed by the same one person


def test_a_unit_of_two_after_a_move_is_not_recovered(session, ctx):
    people = {**{f"a{i}": "a" for i in range(7)}, **{f"b{i}": "b" for i in range(8)}}
    _org(session, ctx, {"p": None, "a": "p", "b": "p", "c": "p"}, people)
    for e in ("a0", "a1", "b0"):
        _grant(session, ctx, e, Purpose.aggregate_insights)
    first = _units(session, ctx, WEEK1)
    assert first["a"]["suppressed"] is False and first["b"]["suppressed"] is False

    _move(session, ctx, "a0", "c")
    _move(session, ctx, "a1", "c")
    second = _units(session, ctx, WEEK2)
    assert second["c"]["suppressed"] is True  # 2 people: below k
    # a lost exactly those 2: a's new figure minus its old one would be them. Held back.
    assert second["a"]["suppressed"] is True and second["a"]["reason"] == DIFFERENCING
    # p (unchanged) replays its figures; b (unchanged) too: nothing isolates c by subtraction.
    assert second["p"] == first["p"] and second["b"] == first["b"]


def test_one_withdrawal_tenant_wide_is_not_visible_as_five_then_four(session, ctx):
    people = {f"e{i}": "org" for i in range(38)}
    _org(session, ctx, {"org": None}, people)
    for i in range(5):
        _grant(session, ctx, f"e{i}", Purpose.work_patterns)
    before = stats.consent_rates(session, ctx.release_rules, WEEK1)
    session.commit()
    rate = {p.purpose: p.rate for p in before.purposes}
    assert before.group_size == 38 and rate[Purpose.work_patterns] == pytest.approx(5 / 38, abs=0.03)

    withdraw(session, ctx, "e0", Purpose.work_patterns, Channel.web, None)
    session.commit()
    same_week = stats.consent_rates(session, ctx.release_rules, WEEK1 + timedelta(days=3))
    assert same_week == before
    next_week = stats.consent_rates(session, ctx.release_rules, WEEK2)
    assert next_week.suppressed is True and next_week.reason == DIFFERENCING
    assert all(p.rate is None for p in next_week.purposes)


def test_unchanged_groups_replay_their_release_instead_of_a_fresh_draw(session, ctx):
    _org(session, ctx, {"org": None}, {f"e{i}": "org" for i in range(12)})
    noisy = ctx.release_rules.model_copy(update={"rho_count": 0.05})  # real noise this time
    first = stats.consent_rates(session, noisy, WEEK1)
    session.commit()
    later = stats.consent_rates(session, noisy, WEEK2 + timedelta(days=14))
    assert later.model_copy(update={"period": first.period}) == first  # same figures, not re-noised


def test_erasure_removes_the_subject_from_stored_memberships(session, ctx):
    from services.consent.stats import repository as stats_repository

    _org(session, ctx, {"org": None}, {f"e{i}": "org" for i in range(6)})
    stats.consent_rates(session, ctx.release_rules, WEEK1)
    session.commit()
    victim = ctx.pseudonym("e3")
    assert any(victim in m for named in stats_repository.memberships(session).values() for m in named.values())
    assert stats_repository.forget(session, victim) >= 1
    session.commit()
    assert not any(victim in m for named in stats_repository.memberships(session).values() for m in named.values())


def test_org_unit_rates_come_in_cursor_pages_each_unit_once(session, ctx):
    units = {"root": None, **{f"u{i}": "root" for i in range(5)}}
    _org(session, ctx, units, {f"e{i}": f"u{i % 5}" for i in range(12)})
    everything = stats.consent_rates_by_org_unit(session, ctx.release_rules, WEEK1)
    assert [u.org_unit for u in everything.org_units] == sorted(units) and everything.next_cursor is None
    seen, sizes, cursor = [], [], None
    while True:
        read = stats.consent_rates_by_org_unit(session, ctx.release_rules, WEEK1, PageRequest(2, cursor))
        seen += read.org_units
        sizes.append(len(read.org_units))
        cursor = read.next_cursor
        if cursor is None:
            break
    assert sizes == [2, 2, 2] and seen == everything.org_units
