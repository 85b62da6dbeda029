"""Responses of ``GET /v1/org``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class OrgUnitRead(BaseModel):
    org_unit: str
    parent: str | None
    reportable: bool = Field(description="Released for this view in the latest stored release.")


class OrgRead(BaseModel):
    view: Literal["organisation", "manager"]
    latest_week: str | None
    units: list[OrgUnitRead]
