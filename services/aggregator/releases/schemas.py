"""Responses of the reporting API: stored release figures, or ``"suppressed"`` with a reason."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.aggregator.forecasts.schemas import ForecastScoresRead
from services.aggregator.releases.models import ReleasedCell
from shared.release.noise import Z95


class Figure(BaseModel):
    value: float
    interval_95: tuple[float, float]
    noise_scale: float = Field(description="Standard deviation of the Gaussian noise (per count or sum).")


class CellRead(BaseModel):
    iso_week: str
    org_unit: str
    parent: str | None
    metric: str
    status: Literal["released", "suppressed"]
    reason: str | None = Field(default=None, description="Why suppressed: below_k, complementary, budget_spent.")
    count: Figure | None = None
    mean: Figure | None = None

    @classmethod
    def of(cls, cell: ReleasedCell, managers: bool) -> CellRead:
        released = cell.manager_released if managers else cell.released
        reason = cell.manager_reason if managers else cell.reason
        base = cls(
            iso_week=cell.iso_week,
            org_unit=cell.org_unit,
            parent=cell.parent,
            metric=cell.metric,
            status="released" if released else "suppressed",
            reason=None if released else reason,
        )
        if not released or cell.count is None or cell.mean is None:
            return base
        count_scale, half = cell.count_scale or 0.0, cell.mean_half_width or 0.0
        base.count = Figure(
            value=cell.count,
            interval_95=(round(cell.count - Z95 * count_scale, 2), round(cell.count + Z95 * count_scale, 2)),
            noise_scale=round(count_scale, 4),
        )
        base.mean = Figure(
            value=round(cell.mean, 3),
            interval_95=(round(cell.mean - half, 3), round(cell.mean + half, 3)),
            noise_scale=round(cell.sum_scale or 0.0, 4),
        )
        return base


class RollupsRead(BaseModel):
    view: Literal["organisation", "manager"]
    k: int
    cells: list[CellRead] = Field(description="One page, in (week, org unit, metric) order.")
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null on the last.")


class ProgramMetricsRead(BaseModel):
    view: Literal["organisation", "manager"]
    k: int
    participation: list[CellRead] = Field(description="Check-in participation: the WHO-5 contributor count.")
    metrics: list[CellRead]
    forecasts: ForecastScoresRead | None = Field(default=None, description="How raised forecasts fared.")
