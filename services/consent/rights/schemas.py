"""Answers of the export and the access log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


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
