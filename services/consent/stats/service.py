"""Consent rates for HR, under the shared release rules (docs/aggregator.md).

Live, exact readings would let two of them be differenced to one person's choices (7 -> 8 people;
a unit of 2 after a move; 5/38 -> 4/38 tenant-wide; tests/consent/test_stats_releases.py). So each
period (ISO week) has one release, computed on its first reading, stored, and replayed for every
later reading:

* the tenant is a root ``*`` above the org tree (its own members: people with no unit), so
  ``tenant = roots + unassigned`` is one more equation for complementary suppression;
* a unit whose members and grants are exactly those of its previous release replays that release
  (decision and figures: never re-drawn);
* a changed unit is held back (``differs_from_earlier_release_by_fewer_than_k``) if it differs
  from any overlapping earlier release by 1..k-1 people;
* the rest get fresh OpenDP counts (group size and grants per purpose) under the per-(unit,
  period) budget, then minimum group size and complementary suppression decide on them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlmodel import Session

from services.consent.hris.repository import org_units
from services.consent.stats import repository as repo
from services.consent.stats.models import TENANT, ConsentStatsCell, ConsentStatsRelease
from services.consent.stats.schemas import ConsentRates, OrgUnitRates, OrgUnitRatesRead, PurposeRate
from shared.events.consent import Purpose
from shared.pagination import PageRequest, page
from shared.release import ledger
from shared.release.guard import MEMBERS, Membership, hold_back
from shared.release.noise import Z95, count_measurement, noisy_counts
from shared.release.rules import ReleaseRules
from shared.release.suppression import Decision, Hierarchy, plan

LEDGER_SCOPE = "consent-stats"
BUDGET_SPENT = "budget_spent"


def period_of(now: datetime) -> str:
    year, week, _ = now.date().isocalendar()
    return f"{year}-W{week:02d}"


def current(session: Session, rules: ReleaseRules, now: datetime | None = None) -> str:
    """The period of ``now``, released now if it was not yet (the first reading releases it)."""
    now = now or datetime.now(UTC)
    period = period_of(now)
    if repo.release(session, period) is None:
        release(session, rules, period, now)
    return period


def release(session: Session, rules: ReleaseRules, period: str, now: datetime) -> None:
    tree = _tree(session)
    people = repo.population(session)
    granted = repo.granted_sets(session)
    sets = _sets(tree, people, granted)
    previous = repo.previous_period(session, period)
    last = repo.memberships(session, previous) if previous else {}
    last_cells = {c.org_unit: c for c in repo.cells(session, previous)} if previous else {}
    pinned = {
        u: Decision(cell.released, cell.reason)
        for u, cell in last_cells.items()
        if u in sets and last.get((previous or "", u), {}) == sets[u]
    }
    earlier = [Membership(named) for named in repo.memberships(session).values()]
    fresh = {u: Membership(named) for u, named in sets.items() if u not in pinned}
    held = hold_back(fresh, earlier, rules.k)
    rho = rules.rho_count * (1 + len(Purpose))
    asking = [u for u in fresh if u not in held]
    allowed = ledger.spend(session, LEDGER_SCOPE, period, asking, rho, rules.rho_cap)
    held.update({u: BUDGET_SPENT for u in asking if u not in allowed})
    noised = sorted(allowed)
    sizes = {u: len(sets[u][MEMBERS]) for u in sets}
    noisy_size = dict(zip(noised, noisy_counts(rules.rho_count, [sizes[u] for u in noised]), strict=True))
    for u in pinned:  # replayed figures stand in for the noisy count the decision would use
        cell = last_cells[u]
        noisy_size[u] = cell.group_size if cell.group_size is not None else 0
    decisions = plan(tree, sizes, noisy_size, rules.k, held, pinned)
    rows = []
    for unit in sorted(tree.parents):
        if unit in pinned:
            old = last_cells[unit]
            replay = old.replayed_from or previous
            rows.append(_row(period, unit, tree, decisions[unit], (old.group_size, old.size_scale), old.rates, replay))
            continue
        released = decisions[unit].released
        figures = _noised_rates(rules, sets[unit], noisy_size[unit]) if released else None
        size = (noisy_size[unit], count_measurement(rules.rho_count).scale) if released else (None, None)
        rows.append(_row(period, unit, tree, decisions[unit], size, figures, None))
    header = ConsentStatsRelease(period=period, released_at=now, k=rules.k)
    repo.store(session, header, rows, {u: sets[u] for u in sets if decisions[u].released})
    session.flush()


def _row(
    period: str,
    unit: str,
    tree: Hierarchy,
    decision: Decision,
    size: tuple[int | None, float | None],
    rates: str | None,
    replay: str | None,
) -> ConsentStatsCell:
    return ConsentStatsCell(
        period=period,
        org_unit=unit,
        parent=tree.parents[unit],
        released=decision.released,
        reason=decision.reason,
        replayed_from=replay,
        group_size=size[0] if decision.released else None,
        size_scale=size[1] if decision.released else None,
        rates=rates if decision.released else None,
    )


def _noised_rates(rules: ReleaseRules, sets: dict[str, frozenset[str]], noisy_size: int) -> str:
    purposes = [p.value for p in Purpose]
    counts = noisy_counts(rules.rho_count, [len(sets.get(p, frozenset())) for p in purposes])
    scale = count_measurement(rules.rho_count).scale
    n = max(noisy_size, 1)
    out = {}
    for purpose, count in zip(purposes, counts, strict=True):
        rate = min(1.0, max(0.0, count / n))
        out[purpose] = [round(rate, 4), round(Z95 * scale / n, 4)]
    return json.dumps(out)


def _tree(session: Session) -> Hierarchy:
    parents: dict[str, str | None] = {TENANT: None}
    for row in org_units(session):
        if row.state == "active":
            parents[row.org_unit] = row.parent
    tree = Hierarchy(parents)
    # Units without a parent hang under the tenant (a parent that is closed or unknown: a root).
    return Hierarchy({u: (p if p is not None else (None if u == TENANT else TENANT)) for u, p in tree.parents.items()})


def _sets(
    tree: Hierarchy, people: dict[str, str | None], granted: dict[str, set[str]]
) -> dict[str, dict[str, frozenset[str]]]:
    members: dict[str, set[str]] = {u: set() for u in tree.parents}
    for pseudonym, unit in people.items():
        current: str | None = unit if unit in tree.parents else TENANT
        while current is not None:
            members[current].add(pseudonym)
            current = tree.parents[current]
    return {
        u: {MEMBERS: frozenset(m), **{p: frozenset(m & granted.get(p, set())) for p in granted}}
        for u, m in members.items()
    }


# --- reading -------------------------------------------------------------------------------------


def consent_rates(session: Session, rules: ReleaseRules, now: datetime | None = None) -> ConsentRates:
    period = current(session, rules, now)
    cell = next(c for c in repo.cells(session, period) if c.org_unit == TENANT)
    return ConsentRates(
        k=rules.k,
        group_size=cell.group_size,
        suppressed=not cell.released,
        reason=cell.reason,
        period=period,
        purposes=_purposes(cell),
    )


def consent_rates_by_org_unit(
    session: Session, rules: ReleaseRules, now: datetime | None = None, request: PageRequest | None = None
) -> OrgUnitRatesRead:
    """The period's figures per org unit, by unit id: all of them, or one page."""
    after = request.after(str) if request is not None else None
    period = current(session, rules, now)
    limit = request.limit + 1 if request is not None else None
    cells, next_cursor = list(repo.unit_cells(session, period, after[0] if after else None, limit)), None
    if request is not None:
        cells, next_cursor = page(cells, request, lambda c: (c.org_unit,))
    return OrgUnitRatesRead(
        k=rules.k,
        period=period,
        next_cursor=next_cursor,
        org_units=[
            OrgUnitRates(
                org_unit=c.org_unit,
                parent=None if c.parent == TENANT else c.parent,
                group_size=c.group_size,
                suppressed=not c.released,
                reason=c.reason,
                purposes=_purposes(c),
            )
            for c in cells
        ],
    )


def _purposes(cell: ConsentStatsCell) -> list[PurposeRate]:
    figures = json.loads(cell.rates) if cell.released and cell.rates else {}
    out = []
    for p in Purpose:
        if p.value in figures:
            rate, half = figures[p.value]
            interval = (max(0.0, rate - half), min(1.0, rate + half))
            out.append(PurposeRate(purpose=p, rate=rate, suppressed=False, interval_95=interval))
        else:
            out.append(PurposeRate(purpose=p, rate=None, suppressed=True))
    return out
