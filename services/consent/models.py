"""Tables of the consent service (created by ``migrations/versions/0002_consent.py``).

Subjects are named by pseudonym everywhere; the employee id exists only in ``directory``, and
only encrypted. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, LargeBinary, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=nullable))


class PurposeRow(SQLModel, table=True):
    """One row per purpose: its current policy version (locked while a version is published)."""

    __tablename__ = "purpose"

    name: str = Field(primary_key=True, max_length=32)
    current_version: int
    updated_at: datetime = _ts()


class PolicyVersion(SQLModel, table=True):
    """The terms of one purpose at one version; never edited, a change is a new version."""

    __tablename__ = "policy_version"

    purpose: str = Field(primary_key=True, max_length=32)
    version: int = Field(primary_key=True)
    texts: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    data_categories: list[str] = Field(sa_column=Column(JSON, nullable=False))
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    retention_days: int
    legal_basis: str = Field(max_length=32)
    material: bool
    published_at: datetime = _ts()


class DirectoryEntry(SQLModel, table=True):
    """Pseudonym -> employee id (AES-GCM sealed): the only way back from a pseudonym."""

    __tablename__ = "directory"

    pseudonym: str = Field(primary_key=True, max_length=64)
    employee_id: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=16)
    created_at: datetime = _ts()


class ContactDetail(SQLModel, table=True):
    """One contact preference field, sealed with AAD = pseudonym + field name."""

    __tablename__ = "contact_detail"

    pseudonym: str = Field(primary_key=True, max_length=64, foreign_key="directory.pseudonym")
    field: str = Field(primary_key=True, max_length=32)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=16)
    updated_at: datetime = _ts()


class Consent(SQLModel, table=True):
    """Current consent of a subject to a purpose (no row: never given)."""

    __tablename__ = "consent"

    pseudonym: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(primary_key=True, max_length=32)
    state: str = Field(max_length=16)
    policy_version: int
    changed_at: datetime = _ts()
    channel: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=8)
    receipt_id: str | None = Field(default=None, max_length=36)
    # Set when a new policy version lapsed this consent: the version that did it.
    lapsed_by_version: int | None = None
    # Version of the subject's KV entry for this purpose: raised by every change in the change's
    # own transaction (the row lock orders them), carried by the KV put (``shared.bus.kvput``).
    kv_version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class ConsentHistory(SQLModel, table=True):
    """Every change, with its signed receipt. Erasure keeps the row but removes the subject."""

    __tablename__ = "consent_history"

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: str | None = Field(default=None, max_length=36, unique=True)
    pseudonym: str | None = Field(default=None, max_length=64, index=True)
    purpose: str = Field(max_length=32)
    state: str = Field(max_length=16)
    policy_version: int
    at: datetime = _ts()
    channel: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=8)
    reason: str | None = Field(default=None, max_length=32)
    receipt_jws: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    erasure_request_id: str | None = Field(default=None, max_length=36)


class ErasureRequest(SQLModel, table=True):
    """A subject's erasure request, tracked until every service has acknowledged it.

    ``pseudonym`` is kept only while acknowledgements are missing (re-publishing needs it);
    ``owner_hash`` lets the subject read the status afterwards without the platform keeping
    anything that names them.
    """

    __tablename__ = "erasure_request"

    id: str = Field(primary_key=True, max_length=36)
    owner_hash: str = Field(max_length=64, index=True)
    pseudonym: str | None = Field(default=None, max_length=64)
    requested_at: datetime = _ts()
    last_sent_at: datetime = _ts()
    completed_at: datetime | None = _ts(nullable=True)
    attempts: int = 1


class ErasureAck(SQLModel, table=True):
    """One service's acknowledgement of an erasure request (pending while ``acknowledged_at`` is null)."""

    __tablename__ = "erasure_ack"

    request_id: str = Field(primary_key=True, max_length=36, foreign_key="erasure_request.id")
    service: str = Field(primary_key=True, max_length=32)
    acknowledged_at: datetime | None = _ts(nullable=True)
    records: int | None = None
