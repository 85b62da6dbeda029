"""Requests and answers of an employee's own consents, history and receipts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.consent.directory.schemas import ContactPreferences
from services.consent.policy.models import DEFAULT_LANGUAGE
from services.consent.policy.schemas import LanguageCode, Strict
from shared.events.consent import Purpose

ConsentView = Literal["not_given", "granted", "withdrawn", "lapsed"]


class Channel(StrEnum):
    """Where the employee gave or withdrew consent."""

    web = "web"
    mobile = "mobile"
    chat = "chat"
    api = "api"


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
