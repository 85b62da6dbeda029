"""Response models of ``GET /v1/me/recommendations``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ReasonCode = Literal["need", "topic", "format", "time", "helpful", "professional", "start", "always"]


class Reason(BaseModel):
    code: ReasonCode
    text: str = Field(description="In the list's language.")


class Recommendation(BaseModel):
    rank: int = Field(ge=1)
    resource_id: str
    kind: str
    format: str
    topics: list[str]
    duration_minutes: int
    professional_help: bool
    title: str
    summary: str
    url: str | None = None
    language: str = Field(description="The language this resource is shown in.")
    language_fallback: bool = Field(description="True when it is not available in the list's language.")
    fallback_note: str | None = Field(default=None, description="Says so, in the list's language.")
    reason: Reason


class RecommendationList(BaseModel):
    personalised: bool
    why_not_personalised: Literal["no-consent", "consent-state-unavailable"] | None = None
    language: str
    professional_help_included: bool
    items: list[Recommendation]
