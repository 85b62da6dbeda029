"""Request and response models of the catalogue API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Topic = Literal["sleep", "stress", "anxiety", "workload", "isolation", "parenting", "low_mood", "energy", "general"]
Kind = Literal["article", "exercise", "video", "course", "eap", "hotline", "counsellor"]
Format = Literal["text", "audio", "video", "interactive", "service"]
LANG_PATTERN = r"^[a-z]{2}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
ROLE_FAMILY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
RESOURCE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,63}$"

# Professional help: always reachable in the list when check-ins show moderate or worse needs.
PROFESSIONAL_KINDS: frozenset[str] = frozenset({"eap", "counsellor", "hotline"})


class ResourceVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1, max_length=1000)
    url: str | None = Field(default=None, max_length=500, pattern=r"^https://[^\s]+$")


class ResourceUpdate(BaseModel):
    """A whole resource (``PUT`` replaces it)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    format: Format
    topics: list[Topic] = Field(min_length=1, max_length=5)
    duration_minutes: int = Field(ge=0, le=600, description="0 for a service that is not timed.")
    countries: list[str] = Field(default_factory=list, max_length=60, description="Audience; empty = everywhere.")
    role_families: list[str] = Field(default_factory=list, max_length=20, description="Audience; empty = all roles.")
    versions: dict[str, ResourceVersion] = Field(min_length=1, max_length=20, description="By language (ISO 639-1).")

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        return _all_match(value, COUNTRY_PATTERN, "countries")

    @field_validator("role_families")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        return _all_match(value, ROLE_FAMILY_PATTERN, "role_families")

    @field_validator("versions")
    @classmethod
    def _languages(cls, value: dict[str, ResourceVersion]) -> dict[str, ResourceVersion]:
        _all_match(list(value), LANG_PATTERN, "versions")
        return value


class ResourceCreate(ResourceUpdate):
    id: str = Field(pattern=RESOURCE_ID_PATTERN)


class ResourceRead(ResourceCreate):
    professional_help: bool


class ResourcePage(BaseModel):
    items: list[ResourceRead]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


def _all_match(values: list[str], pattern: str, field: str) -> list[str]:
    import re

    compiled = re.compile(pattern)
    if any(not compiled.fullmatch(v) for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{field} must be unique and match {pattern}")
    return values
