"""A subject's consents and their history (created by ``migrations/versions/0002_consent.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from services.consent.clock import utc_column

GRANTED = "granted"


class Consent(SQLModel, table=True):
    """Current consent of a subject to a purpose (no row: never given)."""

    __tablename__ = "consent"

    pseudonym: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(primary_key=True, max_length=32)
    state: str = Field(max_length=16)
    policy_version: int
    changed_at: datetime = utc_column()
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
    at: datetime = utc_column()
    channel: str | None = Field(default=None, max_length=16)
    language: str | None = Field(default=None, max_length=8)
    reason: str | None = Field(default=None, max_length=32)
    receipt_jws: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    erasure_request_id: str | None = Field(default=None, max_length=36)
