"""The subject directory's tables (created by ``migrations/versions/0002_consent.py``).

Subjects are named by pseudonym everywhere; the employee id exists only in ``directory``, and
only encrypted. Times are stored as UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from services.consent.clock import utc_column


class DirectoryEntry(SQLModel, table=True):
    """Pseudonym -> employee id (AES-GCM sealed): the only way back from a pseudonym."""

    __tablename__ = "directory"

    pseudonym: str = Field(primary_key=True, max_length=64)
    employee_id: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=16)
    created_at: datetime = utc_column()


class ContactDetail(SQLModel, table=True):
    """One contact preference field, sealed with AAD = pseudonym + field name."""

    __tablename__ = "contact_detail"

    pseudonym: str = Field(primary_key=True, max_length=64, foreign_key="directory.pseudonym")
    field: str = Field(primary_key=True, max_length=32)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=16)
    updated_at: datetime = utc_column()
