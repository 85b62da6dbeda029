"""Fairness audits: self-declared attributes and the released reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["ok", "flagged", "inconclusive"]


class AttributesUpdate(BaseModel):
    """Your self-declared attributes, by name (``prefer_not_to_say`` is always a valid value)."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, str] = Field(max_length=10)


class AttributeOptions(BaseModel):
    name: str
    values: list[str]


class AttributesRead(BaseModel):
    fairness_audit: bool = Field(description="Whether your fairness_audit consent is current.")
    attributes: dict[str, str] = Field(description="What you declared (empty without the consent).")
    options: list[AttributeOptions] = Field(description="What your employer asks about, always optional.")


class Interval(BaseModel):
    low: float
    high: float


class CategoryResult(BaseModel):
    category: str
    rate: float = Field(description="Share of served lists showing this category in the top K (noised).")
    mean_exposure: float = Field(description="Mean position-discounted exposure per list (noised).")
    disparity_ratio: float = Field(description="This group's rate over the best-served group's.")
    interval: Interval = Field(description="95% interval of the ratio, from the noise.")
    verdict: Verdict


class GroupResult(BaseModel):
    value: str
    people: float = Field(description="Noised number of people in the group.")
    lists: float = Field(description="Noised number of lists served.")
    categories: list[CategoryResult]


class FairnessReportRead(BaseModel):
    id: str
    audit_week: str
    attribute: str
    created_at: datetime
    top_k: int
    rho: float = Field(description="Privacy budget this report spent (zero-concentrated DP).")
    epsilon: float = Field(description="The same budget as (epsilon, delta)-DP, by OpenDP's conversion.")
    delta: float
    noise_scales: dict[str, float]
    groups: list[GroupResult]
    left_out: int = Field(description="Groups below the minimum size, not reported.")
    flagged: bool


class FairnessReportList(BaseModel):
    items: list[FairnessReportRead]
    next_cursor: str | None
