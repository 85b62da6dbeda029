"""Recording and retracting contributions: one per token, week and metric; never after release."""

from __future__ import annotations

from prometheus_client import Counter
from sqlmodel import Session

from services.aggregator.contributions import repository as repo
from services.aggregator.contributions.models import HISTOGRAM_BINS, Cell, PendingToken
from services.aggregator.releases import repository as releases
from shared.events.contribution import METRIC_RANGES, ContributionRecorded, ContributionRetracted
from shared.telemetry import REGISTRY

LATE = Counter(
    "kinwell_aggregator_late_contributions_total",
    "Contributions (and retractions) that arrived after their week was released, dropped",
    ["kind"],
    registry=REGISTRY,
)


def _bin(metric: str, value: float) -> int:
    low, high = METRIC_RANGES[metric]
    return min(HISTOGRAM_BINS - 1, int((value - low) / (high - low) * HISTOGRAM_BINS))


def _apply(session: Session, week: str, metric: str, unit: str, value: float, sign: int) -> None:
    row = repo.cell(session, week, metric, unit) or Cell(iso_week=week, metric=metric, org_unit=unit)
    bins = [int(b) for b in row.histogram.split(",")] if row.histogram else [0] * HISTOGRAM_BINS
    bins[_bin(metric, value)] += sign
    row.count += sign
    row.total += sign * value
    row.histogram = ",".join(str(b) for b in bins)
    session.add(row)


def record(session: Session, event: ContributionRecorded) -> str:
    """Add a contribution; a later one of the same token replaces it. ``late`` after release."""
    if releases.is_released(session, event.iso_week):
        releases.count_late(session, event.iso_week)
        LATE.labels("recorded").inc()
        return "late"
    earlier = repo.pending(session, event.iso_week, event.metric, event.period_token)
    if earlier is not None:
        _apply(session, earlier.iso_week, earlier.metric, earlier.org_unit, earlier.value, -1)
        earlier.org_unit, earlier.value = event.org_unit, event.value
        session.add(earlier)
        outcome = "replaced"
    else:
        session.add(
            PendingToken(
                iso_week=event.iso_week,
                metric=event.metric,
                period_token=event.period_token,
                org_unit=event.org_unit,
                value=event.value,
            )
        )
        outcome = "recorded"
    session.flush()
    _apply(session, event.iso_week, event.metric, event.org_unit, event.value, +1)
    return outcome


def retract(session: Session, event: ContributionRetracted) -> int:
    """Remove every contribution of the token for the week (all metrics) if not yet released."""
    if releases.is_released(session, event.iso_week):
        releases.count_late(session, event.iso_week)
        LATE.labels("retracted").inc()
        return 0
    rows = repo.pending_of_token(session, event.iso_week, event.period_token)
    for row in rows:
        _apply(session, row.iso_week, row.metric, row.org_unit, row.value, -1)
        session.delete(row)
    return len(rows)
