"""Request and response models of the consent API.

Requests forbid unknown fields and bound every string: a body cannot smuggle a subject id or
free text past validation. Nothing here names an employee; subjects are pseudonyms.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events.consent import Purpose

REQUIRED_LANGUAGES: tuple[str, ...] = ("en", "es", "fr")  # see PolicyTexts
DEFAULT_LANGUAGE = "en"

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$", min_length=2, max_length=2)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$", min_length=2, max_length=64)]
ConsentView = Literal["not_given", "granted", "withdrawn", "lapsed"]


class Channel(StrEnum):
    """Where the employee gave or withdrew consent."""

    web = "web"
    mobile = "mobile"
    chat = "chat"
    api = "api"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1)(a) consent, or Art. 9(2)(a) explicit consent for health data."""

    consent = "consent"
    explicit_consent = "explicit_consent"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- policy -------------------------------------------------------------------------------------


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


class PolicyVersionPublished(BaseModel):
    policy: PurposePolicy
    lapsed_consents: int = Field(description="Consents to the previous version that this version lapsed.")


# --- consents -----------------------------------------------------------------------------------

Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Email = Annotated[
    str,
    StringConstraints(max_length=254, pattern=r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"),
]
Hours = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")]
TimeZone = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z]{1,20}(/[A-Za-z0-9_+-]{1,30}){0,2}$")]


class ContactPreferences(Strict):
    """How a counsellor may reach the employee once a crisis case is confirmed (escalation only)."""

    preferred_channel: Literal["phone", "sms", "email"]
    phone: Phone | None = None
    email: Email | None = None
    hours: Hours | None = Field(default=None, description="Local hours, e.g. 09:00-18:00.")
    timezone: TimeZone | None = Field(default=None, description="IANA time zone, e.g. Europe/Paris.")

    @model_validator(mode="after")
    def _reachable(self) -> ContactPreferences:
        needed = "email" if self.preferred_channel == "email" else "phone"
        if getattr(self, needed) is None:
            raise ValueError("the preferred channel needs its contact field")
        return self


class ConsentGrant(Strict):
    """Grant consent to a purpose under the policy version the employee was shown."""

    policy_version: int = Field(ge=1, le=1_000_000, description="Must be the purpose's current version.")
    language: LanguageCode = Field(default=DEFAULT_LANGUAGE, description="Language the policy was read in.")
    channel: Channel = Channel.web
    contact: ContactPreferences | None = Field(default=None, description="Only with the escalation purpose.")


class Lapse(BaseModel):
    reason: Literal["policy_updated"]
    new_version: int
    summary: str | None = Field(default=None, description="What changed, in the requested language.")
    at: datetime


class ConsentRead(BaseModel):
    purpose: Purpose
    title: str
    state: ConsentView
    policy_version: int | None = Field(description="Version consented to (null if never given).")
    current_policy_version: int
    changed_at: datetime | None = None
    channel: Channel | None = None
    language: str | None = None
    receipt_id: UUID | None = None
    lapse: Lapse | None = None


class ConsentsRead(BaseModel):
    consents: list[ConsentRead]


class HistoryEntry(BaseModel):
    receipt_id: UUID | None
    purpose: Purpose
    state: Literal["granted", "withdrawn", "lapsed"]
    policy_version: int
    at: datetime
    channel: Channel | None = None
    language: str | None = None
    reason: str | None = None


class HistoryRead(BaseModel):
    entries: list[HistoryEntry]
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null: last page.")


class ReceiptRead(BaseModel):
    receipt_id: UUID
    media_type: Literal["application/jose"] = "application/jose"
    receipt: str = Field(description="Compact JWS (ES256); verify with jwks_uri.")
    jwks_uri: str


# --- data-subject requests ----------------------------------------------------------------------


class Unavailable(BaseModel):
    service: str
    # integrity_failed: the service's keyed audit chain did not verify (its log was rewritten).
    reason: Literal["timeout", "no_responders", "error", "malformed", "integrity_failed"]


class ExportRead(BaseModel):
    generated_at: datetime
    complete: bool = Field(description="False when a service did not answer in time (see unavailable).")
    services: dict[str, dict[str, Any]]
    unavailable: list[Unavailable]


class AccessEntry(BaseModel):
    service: str
    at: datetime
    actor: str
    actor_role: str
    action: str
    purpose: str


class AccessLogRead(BaseModel):
    complete: bool
    entries: list[AccessEntry] = Field(description="Oldest first; one page of them.")
    unavailable: list[Unavailable]
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null on the last.")


class ErasureAccepted(BaseModel):
    request_id: UUID
    status: Literal["pending", "completed"]
    status_url: str


class ServiceAck(BaseModel):
    service: str
    status: Literal["pending", "acknowledged"]
    records: int | None = None
    acknowledged_at: datetime | None = None


class ErasureStatus(BaseModel):
    request_id: UUID
    status: Literal["pending", "completed"]
    requested_at: datetime
    completed_at: datetime | None = None
    attempts: int
    services: list[ServiceAck]


# --- statistics ---------------------------------------------------------------------------------


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
