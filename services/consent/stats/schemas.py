"""Answers of the consent-rate statistics."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.events.consent import Purpose


class PurposeRate(BaseModel):
    purpose: Purpose
    rate: float | None = Field(
        description="Share of the group that consents, from noised counts (OpenDP); null when suppressed."
    )
    suppressed: bool
    interval_95: tuple[float, float] | None = Field(default=None, description="95% interval of the rate's noise.")


class ConsentRates(BaseModel):
    k: int
    period: str = Field(description="The ISO week of the stored release these figures come from.")
    group_size: int | None = Field(description="Subjects in the group (noised); null when suppressed.")
    suppressed: bool
    reason: str | None = Field(default=None, description="Why suppressed: below_k, complementary, differs_...")
    purposes: list[PurposeRate]


class OrgUnitRates(BaseModel):
    org_unit: str
    parent: str | None
    group_size: int | None = Field(description="Subjects in the unit and its sub-units (noised); null when suppressed.")
    suppressed: bool
    reason: str | None = None
    purposes: list[PurposeRate]


class OrgUnitRatesRead(BaseModel):
    k: int
    period: str = Field(description="The ISO week of the stored release these figures come from.")
    org_units: list[OrgUnitRates] = Field(description="Active units, sorted by id; small ones suppressed.")
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null on the last.")
