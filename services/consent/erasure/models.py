"""Erasure requests and each service's acknowledgement (created by ``0002_consent``)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from services.consent.clock import utc_column


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
    requested_at: datetime = utc_column()
    last_sent_at: datetime = utc_column()
    completed_at: datetime | None = utc_column(nullable=True)
    attempts: int = 1


class ErasureAck(SQLModel, table=True):
    """One service's acknowledgement of an erasure request (pending while ``acknowledged_at`` is null)."""

    __tablename__ = "erasure_ack"

    request_id: str = Field(primary_key=True, max_length=36, foreign_key="erasure_request.id")
    service: str = Field(primary_key=True, max_length=32)
    acknowledged_at: datetime | None = utc_column(nullable=True)
    records: int | None = None
