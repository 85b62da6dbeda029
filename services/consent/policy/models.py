"""Purposes and their policy versions (created by ``migrations/versions/0002_consent.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from services.consent.clock import utc_column

DEFAULT_LANGUAGE = "en"


class PurposeRow(SQLModel, table=True):
    """One row per purpose: its current policy version (locked while a version is published)."""

    __tablename__ = "purpose"

    name: str = Field(primary_key=True, max_length=32)
    current_version: int
    updated_at: datetime = utc_column()


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
    published_at: datetime = utc_column()

    def text(self, lang: str) -> tuple[str, dict[str, Any]]:
        """The text in ``lang``, falling back to English; returns (language used, text)."""
        used = lang if lang in self.texts else DEFAULT_LANGUAGE
        return used, self.texts[used]
