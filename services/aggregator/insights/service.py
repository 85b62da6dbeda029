"""Change detection on released series, correlated with known triggers.

Only stored, released figures are read (each with its 95% half-width), so an insight reveals
nothing the release did not. Two detectors per (unit, metric) in the organisation-wide view:

* **drop**: this week against the previous released week; the change's 95% interval is
  ``±sqrt(h1^2 + h2^2)`` (independent noise) and must lie wholly on the adverse side;
* **drift**: a one-sided CUSUM of standardised deviations from the first week of the last eight
  released (reference 0.5, threshold 3), for slow slides no single week shows.

The insight names the trigger whose window (two weeks either side of its dates) overlaps the week
and that covers the unit or an ancestor, and a playbook code for the suggested intervention.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from services.aggregator import metrics
from services.aggregator.forecasts import repository as forecast_repo
from services.aggregator.forecasts import service as forecasts
from services.aggregator.forecasts.models import Forecast
from services.aggregator.forecasts.schemas import ForecastRead, ForecastWithheldRead
from services.aggregator.insights import playbook
from services.aggregator.insights import repository as repo
from services.aggregator.insights.models import Insight
from services.aggregator.insights.schemas import InsightRead, InsightsRead, TriggerRead
from services.aggregator.notify import INSIGHT_PUBLISHED, notify
from services.aggregator.org import repository as org_repo
from services.aggregator.org.models import Trigger
from services.aggregator.releases import repository as releases
from services.aggregator.releases.models import ReleasedCell
from services.aggregator.weeks import week_bounds, week_of
from shared.bus.outbox import stage
from shared.events.aggregator import InsightDetected
from shared.events.contribution import PROGRAM_METRICS
from shared.pagination import PageRequest, cursor_date, invalid_cursor, page
from shared.release.noise import Z95

if TYPE_CHECKING:
    from services.aggregator.access import View

_FORECASTS, _INSIGHTS = "forecast", "insight"  # the two lists a page walks, in this order
HISTORY_WEEKS = 8
CUSUM_REFERENCE, CUSUM_THRESHOLD = 0.5, 3.0
TRIGGER_WINDOW = timedelta(days=14)


def detect(session: Session, week: str, rows: Sequence[ReleasedCell], book: playbook.Playbook | None = None) -> int:
    book = book or playbook.load()
    monday, sunday = week_bounds(week)
    since = week_of(monday - timedelta(weeks=HISTORY_WEEKS - 1))
    history: dict[tuple[str, str], list[ReleasedCell]] = defaultdict(list)
    for cell in releases.cells(session, week_from=since, week_to=week):
        if cell.released and cell.mean is not None and cell.metric not in PROGRAM_METRICS:
            history[(cell.org_unit, cell.metric)].append(cell)
    parents = {r.org_unit: r.parent for r in rows}
    triggers = org_repo.triggers(session)
    found = 0
    for (unit, metric), series in sorted(history.items()):
        if series[-1].iso_week != week:
            continue
        change = _drop(series, metric) or _drift(series, metric)
        if change is None:
            continue
        kind, delta, half, base = change
        trigger = _overlapping(triggers, unit, parents, monday, sunday)
        insight = Insight(
            insight_id=uuid.uuid4().hex,
            kind=kind,
            org_unit=unit,
            metric=metric,
            iso_week=week,
            change=round(delta, 3),
            change_low=round(delta - half, 3),
            change_high=round(delta + half, 3),
            manager_visible=series[-1].manager_released and base.manager_released,
            trigger_id=trigger.trigger_id if trigger else None,
            trigger_kind=trigger.kind if trigger else None,
            trigger_label=trigger.label if trigger else None,
            trigger_starts_on=trigger.starts_on if trigger else None,
            suggestion=book.code_for(trigger.kind if trigger else None),
            detected_at=datetime.now(UTC),
        )
        repo.add(session, insight)
        event = InsightDetected(
            insight_id=insight.insight_id,
            kind=kind,  # type: ignore[arg-type]
            org_unit=unit,
            metric=metric,  # type: ignore[arg-type]
            iso_week=week,
            change=insight.change,
            change_low=insight.change_low,
            change_high=insight.change_high,
            trigger_id=insight.trigger_id,
            trigger_kind=insight.trigger_kind,  # type: ignore[arg-type]
            trigger_starts_on=insight.trigger_starts_on,
            suggestion=insight.suggestion,
        )
        stage(session, event)
        notify(session, INSIGHT_PUBLISHED, event.model_dump(mode="json", exclude={"event_id", "type"}))
        found += 1
    return found


def _drop(series: list[ReleasedCell], metric: str) -> tuple[str, float, float, ReleasedCell] | None:
    if len(series) < 2:
        return None
    now, before = series[-1], series[-2]
    assert now.mean is not None and before.mean is not None
    delta = now.mean - before.mean
    half = math.hypot(now.mean_half_width or 0.0, before.mean_half_width or 0.0)
    adverse = metrics.adverse(metric)
    if (adverse < 0 and delta + half < 0) or (adverse > 0 and delta - half > 0):
        return "drop", delta, half, before
    return None


def _drift(series: list[ReleasedCell], metric: str) -> tuple[str, float, float, ReleasedCell] | None:
    if len(series) < 4:
        return None
    base = series[0]
    assert base.mean is not None
    s0 = (base.mean_half_width or 0.0) / Z95
    adverse, score = metrics.adverse(metric), 0.0
    for cell in series[1:]:
        assert cell.mean is not None
        sigma = math.hypot((cell.mean_half_width or 0.0) / Z95, s0) or 1.0
        score = max(0.0, score + adverse * (cell.mean - base.mean) / sigma - CUSUM_REFERENCE)
    last = series[-1]
    assert last.mean is not None
    if score <= CUSUM_THRESHOLD:
        return None
    half = math.hypot(last.mean_half_width or 0.0, base.mean_half_width or 0.0)
    return "drift", last.mean - base.mean, half, base


def _overlapping(
    triggers: Sequence[Trigger], unit: str, parents: dict[str, str | None], monday: date, sunday: date
) -> Trigger | None:
    chain: set[str] = set()
    current: str | None = unit
    while current is not None and current not in chain:
        chain.add(current)
        current = parents.get(current)
    best: Trigger | None = None
    for trigger in triggers:
        if not chain & set(trigger.org_units.split(",")):
            continue
        start, end = trigger.starts_on - TRIGGER_WINDOW, (trigger.ends_on or trigger.starts_on) + TRIGGER_WINDOW
        if (
            start <= sunday
            and monday <= end
            and (best is None or abs((trigger.starts_on - monday).days) < abs((best.starts_on - monday).days))
        ):
            best = trigger
    return best


def read(
    session: Session, today: date, view: View, lang: str, book: playbook.Playbook, paging: PageRequest
) -> InsightsRead:
    """One page of ``GET /v1/insights``: forecast assessments first (the latest trigger first), then
    detected insights (the latest week first). A page holds up to ``limit`` entries across
    ``insights`` and ``forecasts_withheld``; the cursor says in which of the two lists it stopped."""
    after = paging.after(str, str, str, str, str)
    section = after[0] if after else _FORECASTS
    if section not in (_FORECASTS, _INSIGHTS):
        raise invalid_cursor()
    units, want = view.units(session, today), paging.limit + 1
    entries: list[tuple[tuple[str, ...], Forecast | Insight]] = []
    if section == _FORECASTS:
        start = (cursor_date(after[1]), after[2], after[3], after[4]) if after else None
        for f in forecast_repo.listed(session, units, after=start, limit=want):
            entries.append(((_FORECASTS, f.starts_on.isoformat(), f.org_unit, f.metric, f.trigger_id), f))
    if len(entries) < want:
        start_i = (after[1], after[2], after[3]) if after and section == _INSIGHTS else None
        for i in repo.listed(session, units, view.managers, after=start_i, limit=want - len(entries)):
            entries.append(((_INSIGHTS, i.iso_week, i.org_unit, i.insight_id, ""), i))
    rows, cursor = page(entries, paging, lambda entry: entry[0])
    listed: list[InsightRead | ForecastRead] = []
    withheld: list[ForecastWithheldRead] = []
    for _, row in rows:
        if isinstance(row, Insight):
            listed.append(_present(row, lang, book))
        elif isinstance(shown := forecasts.present(row, view, lang, book), ForecastRead):
            listed.append(shown)
        else:
            withheld.append(shown)
    return InsightsRead(
        view="manager" if view.managers else "organisation",
        lang=lang,  # type: ignore[arg-type]
        insights=listed,
        forecasts_withheld=withheld,
        next_cursor=cursor,
    )


def _present(i: Insight, lang: str, book: playbook.Playbook) -> InsightRead:
    return InsightRead(
        insight_id=i.insight_id,
        kind=i.kind,  # type: ignore[arg-type]
        org_unit=i.org_unit,
        metric=i.metric,
        iso_week=i.iso_week,
        change=i.change,
        interval_95=(i.change_low, i.change_high),
        trigger=TriggerRead(
            trigger_id=i.trigger_id,
            kind=i.trigger_kind or "",
            label=i.trigger_label,
            starts_on=i.trigger_starts_on,
        )
        if i.trigger_id and i.trigger_starts_on
        else None,
        suggestion_code=i.suggestion,
        suggestion=book.text(i.suggestion, lang),
    )
