"""The privacy budget ledger: zCDP rho spent per (scope, unit, period), never above its cap.

zCDP composes by addition, so the ledger is a running sum per row. A release asks for the rho of
everything it is about to noise for a unit; the ledger grants it only if the sum stays within the
cap, in the same transaction that stores the release, so a rolled-back release spends nothing and
a granted one cannot be drawn twice. Spent budget is reported as (epsilon, delta) by conversion.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Field, Session, SQLModel, col, select

from shared.release.noise import epsilon


class ReleaseBudget(SQLModel, table=True):
    __tablename__ = "release_budget"

    scope: str = Field(primary_key=True, max_length=64)  # e.g. "aggregator:who5_index", "consent"
    unit: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=16)
    rho_spent: float = 0.0


def spend(session: Session, scope: str, period: str, units: Iterable[str], rho: float, cap: float) -> set[str]:
    """Charge ``rho`` to each unit's (scope, period) row; returns the units whose budget allowed it.

    Rows are locked for the rest of the transaction on PostgreSQL (``FOR UPDATE``); SQLite
    serialises writers anyway.
    """
    wanted = sorted(set(units))
    rows = {
        r.unit: r
        for r in session.exec(
            select(ReleaseBudget)
            .where(ReleaseBudget.scope == scope, ReleaseBudget.period == period, col(ReleaseBudget.unit).in_(wanted))
            .with_for_update()
        )
    }
    granted: set[str] = set()
    for unit in wanted:
        row = rows.get(unit)
        spent = row.rho_spent if row is not None else 0.0
        if spent + rho > cap + 1e-12:
            continue
        if row is None:
            row = ReleaseBudget(scope=scope, unit=unit, period=period, rho_spent=0.0)
        row.rho_spent = spent + rho
        session.add(row)
        granted.add(unit)
    session.flush()
    return granted


def spent(session: Session, scope: str, period: str, unit: str) -> float:
    row = session.get(ReleaseBudget, (scope, unit, period))
    return row.rho_spent if row is not None else 0.0


def as_epsilon(rho: float, delta: float) -> float:
    return epsilon(rho, delta)
