"""Answers about a subject's erasure request."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel


class ErasureAccepted(BaseModel):
    request_id: UUID
    status: Literal["pending", "completed"]
    status_url: str


class ServiceAck(BaseModel):
    service: str
    status: Literal["pending", "acknowledged"]
    records: int | None = None
    acknowledged_at: datetime | None = None


class ErasureStatus(BaseModel):
    request_id: UUID
    status: Literal["pending", "completed"]
    requested_at: datetime
    completed_at: datetime | None = None
    attempts: int
    services: list[ServiceAck]
