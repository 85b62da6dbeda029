"""Forecasts before announced triggers, from how the same units' released series moved around past
triggers of the same kind (``estimator.py`` says how), and their scoring once the period is released.

Only stored releases are read, and only cells released in the organisation-wide view (a forecast for
the managers' view also needs every cell it rests on released at k = 10): a forecast is
post-processing of figures that already passed every release rule, so it releases nothing new.
A unit not reportable in the latest release (its cell for the metric suppressed) gets no forecast.

Each (trigger, unit, metric) has one row: raised (an ``aggregator.reporting.forecast_issued.v1``
event staged once) or withheld with its reason, recomputed after each new release until raised or
until the trigger starts. Replicas running the job at once collide on that key; one commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from services.aggregator.forecasts import estimator, phrasing
from services.aggregator.forecasts import repository as repo
from services.aggregator.forecasts.estimator import Estimate, Point
from services.aggregator.forecasts.models import Forecast
from services.aggregator.forecasts.schemas import (
    ForecastOutcomeRead,
    ForecastRead,
    ForecastScoresRead,
    ForecastTriggerRead,
    ForecastWithheldRead,
)
from services.aggregator.insights import playbook
from services.aggregator.notify import FORECAST_PUBLISHED, notify
from services.aggregator.org import repository as org_repo
from services.aggregator.org import service as org
from services.aggregator.org.models import Trigger
from services.aggregator.releases import repository as releases
from services.aggregator.weeks import week_of
from shared.bus.outbox import stage
from shared.events.aggregator import ForecastIssued
from shared.events.contribution import PROGRAM_METRICS

if TYPE_CHECKING:
    from services.aggregator.access import View

HORIZON = timedelta(days=120)  # triggers starting further ahead wait
ADVISE_BEFORE = timedelta(days=14)
RAISED = repo.RAISED
Series = dict[tuple[str, str], dict[str, Point]]


def run(session: Session, now: datetime, book: playbook.Playbook | None = None) -> int:
    """The periodic job: score passed forecasts, then assess upcoming triggers. Returns rows written."""
    today = now.date()
    return score_passed(session, today, now) + assess_upcoming(session, today, now, book or playbook.load())


def assess_upcoming(session: Session, today: date, now: datetime, book: playbook.Playbook) -> int:
    latest = releases.latest_week(session)
    if latest is None:
        return 0
    triggers = org_repo.triggers(session)
    tree = org.tree_on(session, today)
    written = 0
    for trigger in triggers:
        if not today < trigger.starts_on <= today + HORIZON:
            continue
        existing = {(f.org_unit, f.metric): f for f in repo.of_trigger(session, trigger.trigger_id)}
        if any(f.starts_on != trigger.starts_on or f.ends_on != _end(trigger) for f in existing.values()):
            repo.drop_stale(session, trigger.trigger_id)
            session.flush()
            existing = {}
        if existing and all(f.assessed_week == latest for f in existing.values()):
            continue
        units = org.subtree(tree, trigger.org_units.split(","))
        past = [t for t in triggers if t.kind == trigger.kind and t.trigger_id != trigger.trigger_id]
        past = [t for t in past if week_of(_end(t)) <= latest and _end(t) < today]
        scope = units | {p for u in units if (p := tree.parents.get(u)) is not None}
        series = _series(session, scope, past)
        for unit in sorted(units):
            for metric in sorted({m for (u, m) in series if u in (unit, tree.parents.get(unit))}):
                row = existing.get((unit, metric))
                if row is not None and row.status == RAISED:
                    continue
                row = _assess(
                    session, trigger, unit, metric, tree.parents, past, triggers, series, latest, now, book, row
                )
                written += 1
    return written


def _end(trigger: Trigger) -> date:
    return trigger.ends_on or trigger.starts_on


def _series(session: Session, units: set[str], past: Sequence[Trigger]) -> Series:
    series: Series = defaultdict(dict)
    if not units:
        return series
    since = week_of(min((t.starts_on for t in past), default=date.max) - timedelta(weeks=estimator.BASELINE_WEEKS + 2))
    for unit, metric, week, mean, half, manager in repo.released_means(session, units, None, since if past else None):
        if metric not in PROGRAM_METRICS:
            series[(unit, metric)][week] = Point(mean, half or 0.0, manager)
    return series


def _covers(trigger: Trigger, unit: str, parents: Mapping[str, str | None]) -> bool:
    named, seen = set(trigger.org_units.split(",")), set()
    current: str | None = unit
    while current is not None and current not in seen:
        if current in named:
            return True
        seen.add(current)
        current = parents.get(current)
    return False


def _busy(trigger_id: str, unit: str, parents: Mapping[str, str | None], triggers: Sequence[Trigger]) -> set[str]:
    """The weeks in the windows of every other trigger (of any kind) announced for ``unit`` or an
    ancestor: not ordinary weeks, so never part of the baseline of ``trigger_id``."""
    others = (t for t in triggers if t.trigger_id != trigger_id and _covers(t, unit, parents))
    return {w for t in others for w in estimator.window(t.starts_on, t.ends_on)[1]}


def _estimate(
    unit: str,
    metric: str,
    parents: Mapping[str, str | None],
    past: Sequence[Trigger],
    triggers: Sequence[Trigger],
    series: Series,
) -> tuple[Estimate | None, str, int, bool]:
    """The unit's own estimate, or its parent's when the unit has too few past triggers; and whether
    every mean it looked at was released at the managers' k too."""
    most, managers = 0, True
    for base in (unit, parents.get(unit)):
        if base is None:
            break
        points = series.get((base, metric), {})
        covering = [t for t in past if _covers(t, base, parents)]
        effects = [
            e
            for t in covering
            if (e := estimator.effect(points, t.starts_on, t.ends_on, _busy(t.trigger_id, base, parents, triggers)))
        ]
        most = max(most, len(effects))
        managers = managers and all(e.manager for e in effects)
        estimate = estimator.combine(effects)
        if estimate is not None:
            return estimate, base, len(effects), managers
    return None, unit, most, managers


def _assess(
    session: Session,
    trigger: Trigger,
    unit: str,
    metric: str,
    parents: Mapping[str, str | None],
    past: Sequence[Trigger],
    triggers: Sequence[Trigger],
    series: Series,
    latest: str,
    now: datetime,
    book: playbook.Playbook,
    row: Forecast | None,
) -> Forecast:
    estimate, based_on, n, managers = _estimate(unit, metric, parents, past, triggers, series)
    current = series.get((unit, metric), {}).get(latest)
    if current is None:
        status = "not_reportable"  # suppressed (or absent) in the latest release: never a forecast
    elif estimate is None:
        status = "too_few_past_triggers"
    elif not estimator.is_adverse(estimate, metric):
        status = "within_noise"
    else:
        status = RAISED
    row = row or Forecast(
        trigger_id=trigger.trigger_id, org_unit=unit, metric=metric, forecast_id=uuid.uuid4().hex, status=status,
        based_on=based_on, trigger_kind=trigger.kind, starts_on=trigger.starts_on, ends_on=_end(trigger),
        advise_on=trigger.starts_on, past_triggers=n, suggestion=book.code_for(trigger.kind),
        assessed_week=latest, assessed_at=now,
    )  # fmt: skip
    row.status, row.based_on, row.past_triggers, row.assessed_week, row.assessed_at = status, based_on, n, latest, now
    row.trigger_label = trigger.label
    row.advise_on = max(now.date(), trigger.starts_on - ADVISE_BEFORE)
    figures = estimate is not None and status != "not_reportable"
    row.expected_change = round(estimate.change, 3) if figures and estimate else None
    row.change_low = round(estimate.low, 3) if figures and estimate else None
    row.change_high = round(estimate.high, 3) if figures and estimate else None
    row.manager_visible = bool(managers and current and current.manager)
    repo.put(session, row)
    if status == RAISED:
        session.flush()
        event = _event(row)
        stage(session, event)
        notify(session, FORECAST_PUBLISHED, event.model_dump(mode="json", exclude={"event_id", "type"}))
    return row


def _event(row: Forecast) -> ForecastIssued:
    assert row.expected_change is not None and row.change_low is not None and row.change_high is not None
    return ForecastIssued(
        forecast_id=row.forecast_id,
        org_unit=row.org_unit,
        based_on=row.based_on,
        metric=row.metric,  # type: ignore[arg-type]
        trigger_id=row.trigger_id,
        trigger_kind=row.trigger_kind,  # type: ignore[arg-type]
        trigger_starts_on=row.starts_on,
        advise_on=row.advise_on,
        expected_change=row.expected_change,
        change_low=row.change_low,
        change_high=row.change_high,
        past_triggers=row.past_triggers,
        suggestion=row.suggestion,
    )


def score_passed(session: Session, today: date, now: datetime) -> int:
    """Score raised forecasts whose period has passed and whose weeks are all released."""
    scored = 0
    triggers: list[Trigger] | None = None
    parents: Mapping[str, str | None] = {}
    for row in repo.unscored(session):
        base, during = estimator.window(row.starts_on, row.ends_on)
        if row.ends_on >= today or not all(releases.is_released(session, w) for w in during):
            continue
        if triggers is None:  # read once, and only when something is due
            triggers = list(org_repo.triggers(session))
            parents = org.tree_on(session, today).parents
        rows = repo.released_means(session, {row.org_unit}, [row.metric], base[0], during[-1])
        points = {week: Point(mean, half or 0.0, manager) for _, _, week, mean, half, manager in rows}
        busy = _busy(row.trigger_id, row.org_unit, parents, triggers)
        observed = estimator.effect(points, row.starts_on, row.ends_on, busy)
        if observed is None:
            row.outcome = "unscorable"
        else:
            assert row.change_low is not None and row.change_high is not None
            row.outcome = "hit" if estimator.scored(observed, row.metric) else "miss"
            row.observed_change = round(observed.change, 3)
            row.within_interval = row.change_low <= observed.change <= row.change_high
        row.scored_at = now
        repo.put(session, row)
        scored += 1
    return scored


# --- reading -------------------------------------------------------------------------------------


def _shown(row: Forecast, view: View) -> bool:
    return row.status == RAISED and (row.manager_visible or not view.managers)


def _withheld(row: Forecast, view: View) -> ForecastWithheldRead:
    # A manager learns nothing resting on figures released below their k, not even a reason.
    visible = row.status != RAISED and (row.manager_visible or not view.managers)
    return ForecastWithheldRead(
        org_unit=row.org_unit,
        metric=row.metric,
        trigger_id=row.trigger_id,
        starts_on=row.starts_on,
        reason=row.status if visible else "not_reportable",  # type: ignore[arg-type]
        past_triggers=row.past_triggers if visible else 0,
    )


def present(row: Forecast, view: View, lang: str, book: playbook.Playbook) -> ForecastRead | ForecastWithheldRead:
    """An assessment as ``view`` may see it: a raised forecast, or withheld with its reason only."""
    if not _shown(row, view):
        return _withheld(row, view)
    assert row.expected_change is not None and row.change_low is not None and row.change_high is not None
    text = phrasing.timed(
        lang, row.trigger_kind, row.trigger_label, row.starts_on, row.advise_on, book.text(row.suggestion, lang)
    )
    return ForecastRead(
        forecast_id=row.forecast_id,
        org_unit=row.org_unit,
        based_on=row.based_on,
        metric=row.metric,
        trigger=ForecastTriggerRead(
            trigger_id=row.trigger_id,
            kind=row.trigger_kind,
            label=row.trigger_label,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
        ),  # fmt: skip
        advise_on=row.advise_on,
        expected_change=row.expected_change,
        interval_95=(row.change_low, row.change_high),
        past_triggers=row.past_triggers,
        suggestion_code=row.suggestion,
        suggestion=text,
        outcome=ForecastOutcomeRead(
            result=row.outcome,  # type: ignore[arg-type]
            observed_change=row.observed_change,
            within_interval=row.within_interval,
        )
        if row.outcome
        else None,
    )


def scores(session: Session, today: date, view: View) -> ForecastScoresRead:
    """How raised forecasts fared, over the forecasts this view may see."""
    rows = [r for r in repo.listed(session, view.units(session, today)) if _shown(r, view) and r.outcome]
    hits = sum(1 for r in rows if r.outcome == "hit")
    misses = sum(1 for r in rows if r.outcome == "miss")
    return ForecastScoresRead(
        scored=len(rows),
        hits=hits,
        misses=misses,
        unscorable=len(rows) - hits - misses,
        within_interval=sum(1 for r in rows if r.within_interval),
        hit_rate=round(hits / (hits + misses), 3) if hits + misses else None,
    )
