"""Policy requests and answers, and what every consent request model shares.

Requests forbid unknown fields and bound every string: a body cannot smuggle a subject id or
free text past validation. Nothing here names an employee; subjects are pseudonyms.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events.consent import Purpose

REQUIRED_LANGUAGES: tuple[str, ...] = ("en", "es", "fr")  # see PolicyTexts

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$", min_length=2, max_length=2)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$", min_length=2, max_length=64)]


class LegalBasis(StrEnum):
    """GDPR Art. 6(1)(a) consent, or Art. 9(2)(a) explicit consent for health data."""

    consent = "consent"
    explicit_consent = "explicit_consent"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyText(Strict):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=2000)
    change_summary: str | None = Field(default=None, min_length=1, max_length=500)


class PolicyTexts(BaseModel):
    """Texts by language: ``en``, ``es`` and ``fr`` required, other two-letter codes allowed."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"propertyNames": {"pattern": "^[a-z]{2}$"}, "maxProperties": 16}
    )
    __pydantic_extra__: dict[str, PolicyText] = Field(init=False)

    en: PolicyText
    es: PolicyText
    fr: PolicyText

    @model_validator(mode="after")
    def _codes(self) -> PolicyTexts:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > 13 or not all(re.fullmatch(r"[a-z]{2}", code) for code in extra):
            raise ValueError("texts are keyed by two-letter language codes (at most 16)")
        return self

    def by_language(self) -> dict[str, PolicyText]:
        return {"en": self.en, "es": self.es, "fr": self.fr, **(self.__pydantic_extra__ or {})}


class PolicyVersionCreate(Strict):
    """A new version of a purpose's terms. ``material`` versions lapse every consent to it;
    a version whose data categories, recipients, retention or legal basis differ is always material."""

    texts: PolicyTexts
    data_categories: list[Code] = Field(min_length=1, max_length=20)
    recipients: list[Code] = Field(min_length=1, max_length=20)
    retention_days: int = Field(ge=1, le=3650)
    legal_basis: LegalBasis
    material: bool = True


class Controller(BaseModel):
    name: str
    contact: str
    jurisdiction: str


class PurposePolicy(BaseModel):
    """One purpose at one policy version, in one language."""

    purpose: Purpose
    version: int
    current: bool
    language: str
    languages: list[str]
    title: str
    description: str
    change_summary: str | None = None
    data_categories: list[str]
    recipients: list[str]
    retention_days: int
    legal_basis: LegalBasis
    material: bool
    published_at: datetime


class PolicyRead(BaseModel):
    tenant: str
    controller: Controller
    language: str
    receipts_jwks_uri: str
    purposes: list[PurposePolicy]


class PolicyVersionsRead(BaseModel):
    purpose: Purpose
    versions: list[PurposePolicy]


class PolicyVersionsPage(PolicyVersionsRead):
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null on the last.")


class PolicyVersionPublished(BaseModel):
    policy: PurposePolicy
    lapsed_consents: int = Field(description="Consents to the previous version that this version lapsed.")
