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


class _Transaction:
    """What this transaction has read or written so far: a consumer applies a fetched batch in one
    transaction, so each week's release state, each touched cell and token is looked up once, and
    nothing is flushed before the commit (one executemany per table instead of a statement per
    contribution). Bound to the transaction: a new one starts empty."""

    def __init__(self, tx: object) -> None:
        self.tx = tx
        self.released: dict[str, bool] = {}
        self.cells: dict[tuple[str, str, str], Cell] = {}
        self.tokens: dict[tuple[str, str, str], PendingToken | None] = {}


def _tx(session: Session) -> _Transaction:
    tx = session.get_transaction() or session.begin()
    state: _Transaction | None = session.info.get("contributions")
    if state is None or state.tx is not tx:
        state = session.info["contributions"] = _Transaction(tx)
    return state


def _released(session: Session, state: _Transaction, week: str) -> bool:
    if week not in state.released:
        state.released[week] = releases.is_released(session, week)
    return state.released[week]


def _cell(session: Session, state: _Transaction, week: str, metric: str, unit: str) -> Cell:
    key = (week, metric, unit)
    row = state.cells.get(key)
    if row is None:
        with session.no_autoflush:
            row = repo.cell(session, week, metric, unit)
        if row is None:
            row = Cell(iso_week=week, metric=metric, org_unit=unit)
            session.add(row)
        state.cells[key] = row
    return row


def _pending(session: Session, state: _Transaction, week: str, metric: str, token: str) -> PendingToken | None:
    key = (week, metric, token)
    if key not in state.tokens:
        with session.no_autoflush:
            state.tokens[key] = repo.pending(session, week, metric, token)
    return state.tokens[key]


def _apply(session: Session, week: str, metric: str, unit: str, value: float, sign: int) -> None:
    row = _cell(session, _tx(session), week, metric, unit)
    bins = [int(b) for b in row.histogram.split(",")] if row.histogram else [0] * HISTOGRAM_BINS
    bins[_bin(metric, value)] += sign
    row.count += sign
    row.total += sign * value
    row.histogram = ",".join(str(b) for b in bins)


def record(session: Session, event: ContributionRecorded) -> str:
    """Add a contribution; a later one of the same token replaces it. ``late`` after release."""
    state = _tx(session)
    if _released(session, state, event.iso_week):
        releases.count_late(session, event.iso_week)
        LATE.labels("recorded").inc()
        return "late"
    earlier = _pending(session, state, event.iso_week, event.metric, event.period_token)
    if earlier is not None:
        _apply(session, earlier.iso_week, earlier.metric, earlier.org_unit, earlier.value, -1)
        earlier.org_unit, earlier.value = event.org_unit, event.value
        outcome = "replaced"
    else:
        token = PendingToken(
            iso_week=event.iso_week,
            metric=event.metric,
            period_token=event.period_token,
            org_unit=event.org_unit,
            value=event.value,
        )
        session.add(token)
        state.tokens[(event.iso_week, event.metric, event.period_token)] = token
        outcome = "recorded"
    _apply(session, event.iso_week, event.metric, event.org_unit, event.value, +1)
    return outcome


def retract(session: Session, event: ContributionRetracted) -> int:
    """Remove every contribution of the token for the week (all metrics) if not yet released."""
    state = _tx(session)
    if _released(session, state, event.iso_week):
        releases.count_late(session, event.iso_week)
        LATE.labels("retracted").inc()
        return 0
    rows = repo.pending_of_token(session, event.iso_week, event.period_token)  # flushes what is pending
    for row in rows:
        _apply(session, row.iso_week, row.metric, row.org_unit, row.value, -1)
        session.delete(row)
        state.tokens[(row.iso_week, row.metric, row.period_token)] = None
    return len(rows)
