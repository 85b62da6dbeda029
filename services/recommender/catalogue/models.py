"""Catalogue tables: resources (with their language versions) and the catalogue's version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from services.recommender.columns import json_column, ts


class Resource(SQLModel, table=True):
    """One resource: an article, exercise, video, course, EAP service, hotline or counsellor."""

    __tablename__ = "resource"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    format: str = Field(max_length=16)
    topics: list[str] = json_column()
    duration_minutes: int
    countries: list[str] = json_column()  # audience: empty = everywhere
    role_families: list[str] = json_column()  # audience: empty = every role
    versions: dict[str, Any] = json_column()  # lang -> {"title", "summary", "url"?}
    updated_at: datetime = ts()


class CatalogueState(SQLModel, table=True):
    """A single row whose ``version`` every catalogue write bumps: replicas reload on change."""

    __tablename__ = "catalogue_state"

    id: int = Field(primary_key=True)
    version: int
