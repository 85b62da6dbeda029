"""Responses of the HRIS routes and of consent rates by org unit."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.consent.schemas import PurposeRate


class HrisWebhookAccepted(BaseModel):
    webhook_id: str
    vendor: str
    events: int = Field(description="HRIS events in the message (after the vendor adapter).")
    published: int = Field(description="hris.* events staged; 0 for a replay or when nothing changed.")
    replayed: bool = Field(description="The webhook id was already processed: nothing was changed.")


class HrisImported(BaseModel):
    events: int = Field(description="HRIS events read from the batch.")
    published: int = Field(description="hris.* events staged; 0 when the batch changed nothing.")


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
