"""Tables of the SLA figures: the subjects' org units (from HRIS) and contributions held back."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


class OrgAssignment(SQLModel, table=True):
    """From ``effective_from`` on, the subject belongs to ``org_unit`` (None: left the organisation)."""

    __tablename__ = "escalation_org_assignment"
    __table_args__ = (UniqueConstraint("pseudonym", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    pseudonym: str = Field(max_length=64, index=True)
    org_unit: str | None = Field(default=None, max_length=64)
    effective_from: date


class PendingContribution(SQLModel, table=True):
    """A de-identified SLA contribution waiting for the next shuffled batch release."""

    __tablename__ = "escalation_pending_contribution"

    msg_id: str = Field(primary_key=True, max_length=100)
    subject: str = Field(max_length=255)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
