"""What the recommender holds about a person, all under the ``personalization`` purpose.

Deleted as a whole on withdrawal, on ``DELETE /v1/me/profile`` and on erasure.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.recommender.columns import json_column, ts


class Preference(SQLModel, table=True):
    """Expressed preferences (``PUT /v1/me/preferences``)."""

    __tablename__ = "preference"

    pseudonym: str = Field(primary_key=True, max_length=64)
    language: str | None = Field(default=None, max_length=2)
    topics: list[str] = json_column()
    formats: list[str] = json_column()
    minutes_available: int | None = None
    updated_at: datetime = ts()


class NeedSignal(SQLModel, table=True):
    """Needs derived from one week's check-in (``checkin.personalization.submitted.v2``, sealed)."""

    __tablename__ = "need_signal"

    pseudonym: str = Field(primary_key=True, max_length=64)
    iso_week: str = Field(primary_key=True, max_length=8)
    needs: list[str] = json_column()
    lang: str = Field(max_length=2)
    received_at: datetime = ts()


class HrisProfile(SQLModel, table=True):
    """Role family, country and language from the HRIS (``hris.personalization.profile.v1``).

    Used to filter resources by audience (an EAP offered in some countries only), never to rank.
    """

    __tablename__ = "hris_profile"

    pseudonym: str = Field(primary_key=True, max_length=64)
    role_family: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=2)
    language: str | None = Field(default=None, max_length=2)
    updated_at: datetime = ts()


class Interaction(SQLModel, table=True):
    """viewed, completed, helpful, not_helpful or dismissed, for one resource."""

    __tablename__ = "interaction"

    id: int | None = Field(default=None, primary_key=True)
    pseudonym: str = Field(index=True, max_length=64)
    resource_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    at: datetime = ts()
