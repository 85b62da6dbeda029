"""Data-subject rights: erasure requests (consent) and the acknowledgements of every service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.base import Event
from shared.events.consent import PSEUDONYM_PATTERN


class ErasureRequested(Event):
    """The subject asked for erasure: every service deletes what it holds and acknowledges."""

    type: Literal["subject.erasure.requested.v1"] = "subject.erasure.requested.v1"

    request_id: UUID
    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    requested_at: datetime


class SubjectErased(Event):
    """A service erased a subject (``records`` rows deleted, data key destroyed where it had one)."""

    type: Literal["subject.erased.v1"] = "subject.erased.v1"
    subject_template = "{service}.erasure.erased.v1"

    request_id: UUID
    service: Literal["checkin", "recommender", "aggregator", "escalation"]
    records: int = Field(ge=0)


class SubjectDataRequest(BaseModel):
    """Request/reply body sent by consent to every service for export or access log."""

    model_config = ConfigDict(extra="forbid")
    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)


class SubjectDataReply(BaseModel):
    """What a service holds about a subject (export) or who accessed it (access log)."""

    model_config = ConfigDict(extra="forbid")
    service: str
    data: dict[str, Any] = Field(default_factory=dict)
