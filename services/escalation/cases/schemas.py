"""Request and response models of the case API (counsellors) and support requests (employees)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Severity = Literal["imminent", "high", "moderate"]
State = Literal["proposed", "confirmed", "contacted", "resolved", "dismissed", "withdrawn"]
DismissReason = Literal["false_positive", "duplicate", "handled_elsewhere", "employee_declined", "other"]
ResolveReason = Literal["supported", "referred", "emergency_services", "no_further_action", "other"]
Channel = Literal["phone", "sms", "email", "video", "in_person"]


def _clean_text(value: str | None) -> str | None:
    if value is not None and ("\x00" in value or not value.strip()):
        raise ValueError("text must not be blank or contain NUL")
    return value


NEXT_CURSOR = "Pass as ``cursor`` for the next page; null: last page."


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseSummary(BaseModel):
    """A queue entry: enough to triage, nothing about the person."""

    id: str
    severity: Severity
    state: State
    source: Literal["flag", "request"]
    reasons: list[str]
    opened_at: datetime
    acknowledged: bool
    held_by_me: bool
    held: bool


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    actor_role: str
    by_me: bool
    reason: str | None = None
    text: str | None = Field(default=None, description="Notes and the employee's own words, for the case holder.")


class CaseRead(CaseSummary):
    round: int
    acked_at: datetime | None
    confirmed_at: datetime | None
    contacted_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    has_shared_note: bool = Field(description="Open it with check-in's POST /v1/shared-notes/open {case_id}.")
    preferred_channel: Channel | None
    preferred_time: str | None
    pages: int
    policy: dict[str, object] = Field(description="The policy this case runs on (copied at opening).")
    history: list[HistoryEntry]


class CaseList(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)


class Dismissal(Strict):
    reason: DismissReason
    text: str | None = Field(default=None, max_length=2000)

    _text = field_validator("text")(_clean_text)


class Resolution(Strict):
    reason: ResolveReason
    text: str | None = Field(default=None, max_length=2000)

    _text = field_validator("text")(_clean_text)


class NoteCreate(Strict):
    text: str = Field(min_length=1, max_length=4000)

    _text = field_validator("text")(_clean_text)


class Confirmed(BaseModel):
    case: CaseRead
    contact: dict[str, str] | None = Field(description="The employee's chosen contact details; null if none given.")
    contact_source: Literal["consent_directory", "request", "none"]


class SupportContact(Strict):
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SupportRequestCreate(Strict):
    """Ask for a person to contact you. Always allowed, whatever your consents."""

    note: str | None = Field(default=None, max_length=2000)
    preferred_channel: Channel | None = None
    preferred_time: str | None = Field(default=None, max_length=64, description="e.g. 'weekdays after 17:00'.")
    contact: SupportContact | None = Field(default=None, description="How to reach you, if not given with consent.")
    urgent: bool = Field(default=False, description="Urgent requests are triaged as high severity.")

    _note = field_validator("note", "preferred_time")(_clean_text)


class SupportRequestRead(BaseModel):
    id: str
    state: State
    severity: Severity
    source: Literal["flag", "request"]
    opened_at: datetime
    updated_at: datetime
    contacted_at: datetime | None
    closed_at: datetime | None
    legal_hold_until: datetime | None = Field(description="Kept despite your erasure request until then (legal hold).")
    legal_hold_applies: bool = Field(description="Erasure would keep this case for the legal hold period.")


class SupportRequestList(BaseModel):
    items: list[SupportRequestRead]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR)
