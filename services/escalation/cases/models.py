"""Tables of crisis cases: the case, its history, and the subject keys that seal free text."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, ForeignKey, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

# Re-exported so the escalation database has the same ``data_key`` table as check-in (crypto-shredding).
from shared.datakeys import DataKey

SEVERITIES = ("imminent", "high", "moderate")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}  # queue order: imminent first
OPEN_STATES = ("proposed", "confirmed", "contacted")
CLOSED_STATES = ("resolved", "dismissed", "withdrawn")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes (stored as UTC)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Case(SQLModel, table=True):
    """A crisis case. The subject is named by pseudonym only; free text lives sealed in history."""

    __tablename__ = "escalation_case"

    id: str = Field(primary_key=True, max_length=32)
    pseudonym: str = Field(max_length=64, index=True)
    source: str = Field(max_length=16, description="flag (screening) or request (the employee asked).")
    basis: str = Field(max_length=24, description="consent (escalation purpose) or contact_requested.")
    checkin_ref: str | None = Field(default=None, max_length=36, index=True)
    severity: str = Field(max_length=16)
    severity_rank: int = Field(index=True)
    reasons: str = Field(default="", max_length=200, description="Comma-separated screening reason codes.")
    state: str = Field(max_length=16, index=True)
    assignee: str | None = Field(default=None, max_length=64, description="Pseudonym of the counsellor holding it.")
    round: int = Field(default=0, description="Escalation rounds: a missed contact timeout starts another.")
    opened_at: datetime = Field(index=True)
    updated_at: datetime
    acked_at: datetime | None = None
    first_acked_at: datetime | None = None
    confirmed_at: datetime | None = None
    contacted_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = Field(default=None, max_length=32)
    # The shared note of the flag (sealed by check-in under the subject's check-in key, opened only
    # through check-in's audited POST /v1/shared-notes/open).
    shared_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    preferred_channel: str | None = Field(default=None, max_length=16)
    preferred_time: str | None = Field(default=None, max_length=64)
    # Copies of the policy and rosters in force when the case opened: later edits never change it.
    policy: str = Field(sa_column=Column(Text, nullable=False))
    rosters: str = Field(sa_column=Column(Text, nullable=False))
    legal_hold_until: datetime | None = None


class CaseEvent(SQLModel, table=True):
    """One line of a case's history. Free text (notes, a request's words) only sealed."""

    __tablename__ = "case_event"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(sa_column=Column(String(32), ForeignKey("escalation_case.id", ondelete="CASCADE"), index=True))
    at: datetime
    action: str = Field(max_length=32)
    actor: str = Field(max_length=64, description="A counsellor's pseudonym, 'subject' or 'system'.")
    actor_role: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=32, description="A fixed code, never free text.")
    key_id: str | None = Field(
        default=None, sa_column=Column(String(32), ForeignKey("data_key.key_id", ondelete="CASCADE"), nullable=True)
    )
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


__all__ = ["Case", "CaseEvent", "DataKey", "as_utc", "utcnow"]
