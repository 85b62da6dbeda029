"""Progress through learning paths (``personalization`` purpose)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.recommender.columns import ts


class PathProgress(SQLModel, table=True):
    __tablename__ = "path_progress"

    pseudonym: str = Field(primary_key=True, max_length=64)
    path_id: str = Field(primary_key=True, max_length=64)
    module_id: str = Field(primary_key=True, max_length=16)
    status: str = Field(max_length=16)  # completed | skipped
    feedback: str | None = Field(default=None, max_length=16)  # helpful | not_helpful | too_hard
    at: datetime = ts()
