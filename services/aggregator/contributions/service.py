"""Recording and retracting contributions: one per token, week and metric; never after release.

``record`` and ``retract`` stage their event in the session's transaction; the staged events are
applied together, in the order they came, when the transaction commits (or before the
contributions state is read in it): one query for the weeks' release state, one for the tokens
already held, one for the touched cells, one ``executemany`` per kind of write. A consumer
applies a fetched batch in one transaction, so a batch costs a handful of statements instead of a
few per contribution; one event alone is a batch of one, through the same code.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from sqlalchemy import event as sa_event
from sqlmodel import Session

from services.aggregator.contributions import repository as repo
from services.aggregator.contributions.models import HISTOGRAM_BINS, Cell
from services.aggregator.releases import repository as releases
from shared.db import after_commit
from shared.events.contribution import METRIC_RANGES, ContributionRecorded, ContributionRetracted
from shared.telemetry import REGISTRY

LATE = Counter(
    "kinwell_aggregator_late_contributions_total",
    "Contributions (and retractions) that arrived after their week was released, dropped",
    ["kind"],
    registry=REGISTRY,
)
_STAGED = "contributions.staged"
_RECORDED, _RETRACTED = "recorded", "retracted"


def _bin(metric: str, value: float) -> int:
    low, high = METRIC_RANGES[metric]
    return min(HISTOGRAM_BINS - 1, int((value - low) / (high - low) * HISTOGRAM_BINS))


@dataclass(slots=True)
class _Staged:
    """Events of one transaction not applied yet: (kind, week, metric, token, unit, value)."""

    tx: object
    events: list[tuple[str, str, str, str, str, float]] = field(default_factory=list)


def _stage(session: Session, item: tuple[str, str, str, str, str, float]) -> None:
    tx = session.get_transaction() or session.begin()
    staged: _Staged | None = session.info.get(_STAGED)
    if staged is None or staged.tx is not tx:  # a new transaction: what an ended one staged is gone
        staged = session.info[_STAGED] = _Staged(tx)
    staged.events.append(item)


def record(session: Session, event: ContributionRecorded) -> None:
    """Add a contribution; a later one of the same token, week and metric replaces it. Dropped
    and counted (``Release.late_dropped``) if its week is released."""
    _bin(event.metric, event.value)  # a metric without a range fails here, with its event
    _stage(session, (_RECORDED, event.iso_week, event.metric, event.period_token, event.org_unit, event.value))


def retract(session: Session, event: ContributionRetracted) -> None:
    """Remove every contribution of the token for the week (all metrics) if not yet released."""
    _stage(session, (_RETRACTED, event.iso_week, "", event.period_token, event.org_unit, 0.0))


def cells_of_week(session: Session, week: str) -> list[Cell]:
    settle(session)
    return list(repo.cells_of_week(session, week))


def open_weeks(session: Session) -> list[str]:
    settle(session)
    return repo.open_weeks(session)


def drop_week(session: Session, week: str) -> int:
    settle(session)
    return repo.drop_week(session, week)


@sa_event.listens_for(Session, "before_commit")
def _settle_before_commit(session: Session) -> None:
    if _STAGED in session.info:
        settle(session)


def settle(session: Session) -> None:
    """Apply what this transaction staged, in order (see the module docstring)."""
    staged: _Staged | None = session.info.pop(_STAGED, None)
    if staged is None or staged.tx is not session.get_transaction() or not staged.events:
        return
    events = staged.events
    released = releases.released_among(session, {e[1] for e in events})

    # Every contribution held for the batch's tokens, all metrics: token -> metric -> (unit, value).
    wanted: dict[str, set[str]] = defaultdict(set)
    for _, week, _, token, _, _ in events:
        if week not in released:
            wanted[week].add(token)
    held: dict[tuple[str, str], dict[str, tuple[str, float]]] = defaultdict(dict)
    for week, tokens in wanted.items():
        for token, metric, unit, value in repo.held_tokens(session, week, tokens):
            held[(week, token)][metric] = (unit, value)
    before = {key: dict(metrics) for key, metrics in held.items()}

    # Replay the events on them, noting each change of a cell: (week, metric, unit, value, +1/-1).
    changes: list[tuple[str, str, str, float, int]] = []
    late: Tally[tuple[str, str]] = Tally()
    for kind, week, metric, token, unit, value in events:
        if week in released:
            late[(week, kind)] += 1
            continue
        metrics = held[(week, token)]
        if kind == _RECORDED:
            earlier = metrics.get(metric)
            if earlier is not None:
                changes.append((week, metric, earlier[0], earlier[1], -1))
            metrics[metric] = (unit, value)
            changes.append((week, metric, unit, value, +1))
        else:
            for held_metric, (held_unit, held_value) in metrics.items():
                changes.append((week, held_metric, held_unit, held_value, -1))
            metrics.clear()

    _write_tokens(session, before, held)
    _write_cells(session, changes)
    if late:
        for (week, _), n in late.items():
            releases.count_late(session, week, n)

        def count() -> None:
            for (_, kind), n in late.items():
                LATE.labels(kind).inc(n)

        after_commit(session, count)


def _write_tokens(
    session: Session,
    before: dict[tuple[str, str], dict[str, tuple[str, float]]],
    after: dict[tuple[str, str], dict[str, tuple[str, float]]],
) -> None:
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    for (week, token), metrics in after.items():
        was = before.get((week, token), {})
        for metric, (unit, value) in metrics.items():
            if metric not in was:
                inserted.append(
                    {"iso_week": week, "metric": metric, "period_token": token, "org_unit": unit, "value": value}
                )
            elif was[metric] != (unit, value):
                updated.append({"k_w": week, "k_m": metric, "k_t": token, "org_unit": unit, "value": value})
        deleted.extend({"k_w": week, "k_m": metric, "k_t": token} for metric in was if metric not in metrics)
    repo.write_tokens(session, inserted, updated, deleted)


def _write_cells(session: Session, changes: list[tuple[str, str, str, float, int]]) -> None:
    if not changes:
        return
    touched: dict[str, dict[tuple[str, str], list[Any]]] = defaultdict(dict)  # week -> (metric, unit) -> state
    for week, metric, unit, _, _ in changes:
        touched[week][(metric, unit)] = []
    stored: set[tuple[str, str, str]] = set()
    for week, cells in touched.items():
        for metric, unit, count, total, histogram in repo.cells_of(
            session, week, {m for m, _ in cells}, {u for _, u in cells}
        ):
            if (metric, unit) in cells:
                bins = list(map(int, histogram.split(","))) if histogram else [0] * HISTOGRAM_BINS
                cells[(metric, unit)] = [count, total, bins]
                stored.add((week, metric, unit))
        for state in cells.values():
            if not state:
                state.extend((0, 0.0, [0] * HISTOGRAM_BINS))
    for week, metric, unit, value, sign in changes:
        state = touched[week][(metric, unit)]
        state[0] += sign
        state[1] += sign * value
        state[2][_bin(metric, value)] += sign
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    for week, cells in touched.items():
        for (metric, unit), (count, total, bins) in cells.items():
            histogram = ",".join(map(str, bins))
            if (week, metric, unit) in stored:
                updated.append(
                    {"k_w": week, "k_m": metric, "k_u": unit, "count": count, "total": total, "histogram": histogram}
                )
            else:
                inserted.append(
                    {"iso_week": week, "metric": metric, "org_unit": unit, "count": count, "total": total,
                     "histogram": histogram}
                )  # fmt: skip
    repo.write_cells(session, inserted, updated)
