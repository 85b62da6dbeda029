"""Request and response models of the profile API (preferences, interactions, the profile)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.recommender.catalogue.schemas import RESOURCE_ID_PATTERN, Format, Topic

UiLanguage = Literal["en", "es", "fr"]
InteractionKind = Literal["viewed", "completed", "helpful", "not_helpful", "dismissed"]


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


class PreferencesUpdate(BaseModel):
    """What you would like to see. Every field is optional; PUT replaces the whole set."""

    model_config = ConfigDict(extra="forbid")

    language: UiLanguage | None = None
    topics: list[Topic] = Field(default_factory=list, max_length=9)
    formats: list[Format] = Field(default_factory=list, max_length=5)
    minutes_available: int | None = Field(default=None, ge=1, le=240, description="Time you have for a resource.")

    _topics = field_validator("topics")(_unique)
    _formats = field_validator("formats")(_unique)


class PreferencesRead(PreferencesUpdate):
    updated_at: datetime | None = None


class InteractionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource_id: str = Field(pattern=RESOURCE_ID_PATTERN)
    kind: InteractionKind


class InteractionAccepted(BaseModel):
    recorded: bool = Field(description="False without the personalization consent: nothing was stored.")


class InteractionRead(InteractionCreate):
    at: datetime


class NeedsRead(BaseModel):
    iso_week: str
    needs: list[str]


class HrisRead(BaseModel):
    role_family: str | None
    country: str | None
    language: str | None


class ProgressRead(BaseModel):
    path_id: str
    module_id: str
    status: str
    feedback: str | None
    at: datetime


class AttributeRead(BaseModel):
    name: str
    value: str


class ProfileRead(BaseModel):
    """Everything the recommender holds about you."""

    personalization: bool = Field(description="Whether your personalization consent is current.")
    preferences: PreferencesRead | None
    needs: list[NeedsRead] = Field(description="Needs derived from your recent check-ins (never your answers).")
    hris: HrisRead | None = Field(description="From your employer's HR system: used to filter, never to rank.")
    interactions: list[InteractionRead]
    path_progress: list[ProgressRead]
    declared_attributes: list[AttributeRead] = Field(description="Only with the fairness_audit consent.")
