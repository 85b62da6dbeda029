"""Releasing a closed ISO week: noise, budget, suppression, store, publish.

A week closes ``grace`` after its Sunday ends (late check-ins still arrive in that window). Its
release is computed once, stored, and served as stored; the week's tokens and statistics are then
deleted, and contributions that arrive later are dropped and counted (``Release.late_dropped``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from services.aggregator.access import View
from services.aggregator.contributions import service as contributions
from services.aggregator.contributions.models import Cell
from services.aggregator.insights import service as insights
from services.aggregator.notify import ROLLUP_PUBLISHED, notify
from services.aggregator.org import service as org
from services.aggregator.releases import repository as repo
from services.aggregator.releases.models import Release, ReleasedCell
from services.aggregator.releases.schemas import CellRead, ProgramMetricsRead, RollupsRead
from services.aggregator.weeks import closes_at, week_bounds
from shared.bus.outbox import stage
from shared.errors import BadRequest, Forbidden
from shared.events.aggregator import RollupPublished
from shared.events.contribution import METRIC_RANGES, PROGRAM_METRICS
from shared.pagination import PageRequest, page
from shared.release import ledger
from shared.release.noise import Z95, count_measurement, noisy_centred_sums, noisy_counts, sum_measurement
from shared.release.rules import ReleaseRules
from shared.release.suppression import Decision, Hierarchy, plan

BUDGET_SPENT = "budget_spent"
LEDGER_SCOPE = "aggregator"


def due_weeks(session: Session, now: datetime, grace: timedelta) -> list[str]:
    return [
        w for w in contributions.open_weeks(session) if closes_at(w, grace) <= now and not repo.is_released(session, w)
    ]


def release_due(session: Session, now: datetime, grace: timedelta, rules: ReleaseRules) -> list[str]:
    """Release every closed week not released yet (oldest first)."""
    done = []
    for week in due_weeks(session, now, grace):
        release_week(session, week, rules, now)
        done.append(week)
    return done


def release_week(session: Session, week: str, rules: ReleaseRules, now: datetime) -> Release:
    cells = contributions.cells_of_week(session, week)
    tree = org.tree_on(session, week_bounds(week)[1], {c.org_unit for c in cells})
    rows: list[ReleasedCell] = []
    by_metric: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        by_metric[cell.metric].append(cell)
    for metric in sorted(by_metric):
        granted = ledger.spend(
            session, LEDGER_SCOPE, week, tree.parents, rules.rho_count + rules.rho_sum, rules.rho_cap
        )
        rows.extend(release_metric(tree, metric, by_metric[metric], rules, granted, week))
    release = Release(iso_week=week, released_at=now, k=rules.k, manager_k=rules.manager_k)
    repo.add_all(session, release, rows)
    contributions.drop_week(session, week)
    shown = sum(1 for r in rows if r.released)
    event = RollupPublished(iso_week=week, cells_released=shown, cells_suppressed=len(rows) - shown)
    stage(session, event)
    notify(session, ROLLUP_PUBLISHED, event.model_dump(mode="json", exclude={"event_id", "type"}))
    session.flush()
    insights.detect(session, week, rows)
    return release


def release_metric(
    tree: Hierarchy, metric: str, cells: Sequence[Cell], rules: ReleaseRules, granted: set[str], week: str
) -> list[ReleasedCell]:
    """The figures and both views' decisions for one metric of one week (pure: no queries)."""
    low, high = METRIC_RANGES[metric]
    direct_n = {c.org_unit: c.count for c in cells}
    direct_s = {c.org_unit: c.total for c in cells}
    counts = tree.subtree_totals(direct_n)
    sums = _subtree_sums(tree, direct_s)
    units = sorted(u for u in tree.parents if u in granted)
    noisy_n = dict(zip(units, noisy_counts(rules.rho_count, [counts[u] for u in units]), strict=True))
    centred = noisy_centred_sums(rules.rho_sum, low, high, [sums[u] for u in units], [counts[u] for u in units])
    noisy_c = dict(zip(units, centred, strict=True))
    held = {u: BUDGET_SPENT for u in tree.parents if u not in granted}
    hr = plan(tree, counts, noisy_n, rules.k, held)
    managers = plan(tree, counts, noisy_n, rules.manager_k, held)
    s_count = count_measurement(rules.rho_count).scale
    s_sum = sum_measurement(rules.rho_sum, low, high).scale
    rows = []
    for unit in sorted(tree.parents):
        row = _row(week, metric, unit, tree.parents[unit], hr[unit], managers[unit])
        if row.released or row.manager_released:
            n = max(noisy_n[unit], 1)
            offset = noisy_c[unit] / n  # the mean's distance from the range's midpoint
            row.count, row.count_scale, row.sum_scale = noisy_n[unit], s_count, s_sum
            row.mean = min(high, max(low, (low + high) / 2 + offset))
            row.mean_half_width = Z95 * math.sqrt(s_sum**2 + (offset * s_count) ** 2) / n
        rows.append(row)
    return rows


def _row(week: str, metric: str, unit: str, parent: str | None, hr: Decision, mgr: Decision) -> ReleasedCell:
    return ReleasedCell(
        iso_week=week,
        metric=metric,
        org_unit=unit,
        parent=parent,
        released=hr.released,
        reason=hr.reason,
        manager_released=mgr.released,
        manager_reason=mgr.reason,
    )


def _subtree_sums(tree: Hierarchy, direct: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for unit in tree.bottom_up():
        totals[unit] = direct.get(unit, 0.0) + sum(totals[c] for c in tree.children[unit])
    return totals


# --- reading stored releases ---------------------------------------------------------------------


def read_rollups(
    session: Session,
    today: date,
    view: View,
    org_unit: str | None,
    metric: str | None,
    week_from: str | None,
    week_to: str | None,
    paging: PageRequest,
) -> RollupsRead:
    if week_from and week_to and week_from > week_to:
        raise BadRequest("from is after to")
    allowed = view.units(session, today)
    if org_unit is not None and allowed is not None and org_unit not in allowed:
        raise Forbidden("that org unit is outside your scope")
    units = {org_unit} if org_unit is not None else allowed
    rows, cursor = _cell_page(session, paging, units=units, metric=metric, week_from=week_from, week_to=week_to)
    return RollupsRead(
        view="manager" if view.managers else "organisation",
        k=_k(session, view),
        cells=[CellRead.of(r, view.managers) for r in rows],
        next_cursor=cursor,
    )


def _cell_page(session: Session, paging: PageRequest, **where: Any) -> tuple[list[ReleasedCell], str | None]:
    """One page of the reported cells (program metrics have their own endpoint)."""
    after = paging.after(str, str, str)
    rows = repo.cells(
        session,
        exclude_metrics=PROGRAM_METRICS,
        after=(after[0], after[1], after[2]) if after else None,
        limit=paging.limit + 1,
        **where,
    )
    return page(rows, paging, lambda r: (r.iso_week, r.org_unit, r.metric))


def read_program_metrics(session: Session, today: date, view: View) -> ProgramMetricsRead:
    if view.roots is None:
        tree = org.tree_on(session, today)
        tops = {u for u, p in tree.parents.items() if p is None}
    else:
        tops = set(view.roots)
    rows = repo.cells(session, units=tops, metrics=(*PROGRAM_METRICS, "who5_index"))
    cells = [CellRead.of(r, view.managers) for r in rows]
    participation = [
        c.model_copy(update={"mean": None, "metric": "participation"}) for c in cells if c.metric == "who5_index"
    ]
    return ProgramMetricsRead(
        view="manager" if view.managers else "organisation",
        k=_k(session, view),
        participation=participation,
        metrics=[c for c in cells if c.metric in PROGRAM_METRICS],
    )


def read_team_view(
    session: Session, org_unit: str, week_from: str | None, week_to: str | None, paging: PageRequest
) -> RollupsRead:
    rows, cursor = _cell_page(session, paging, week_from=week_from, week_to=week_to, units=_chain(session, org_unit))
    return RollupsRead(
        view="organisation",
        k=_k(session, None),
        cells=[CellRead.of(r, False) for r in rows],
        next_cursor=cursor,
    )


def _chain(session: Session, org_unit: str) -> set[str]:
    """The unit and its ancestors as each stored release recorded them."""
    chain: set[str] = set()
    frontier = {org_unit}
    while frontier:
        chain |= frontier
        parents = {r.parent for r in repo.cells(session, units=frontier) if r.parent is not None}
        frontier = parents - chain
    return chain


def _k(session: Session, view: View | None) -> int:
    week = repo.latest_week(session)
    release = session.get(Release, week) if week else None
    if release is None:
        return 0
    return release.manager_k if view is not None and view.managers else release.k
