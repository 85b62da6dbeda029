"""Tables of the escalation ladder: its configuration, durable timers, and the pages sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Text
from sqlmodel import Field, SQLModel


class LadderConfig(SQLModel, table=True):
    """The current policy (``kind='policy'``) or set of rosters (``kind='rosters'``), versioned."""

    __tablename__ = "ladder_config"

    kind: str = Field(primary_key=True, max_length=16)
    version: int
    document: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime
    updated_by: str = Field(max_length=64)


class CaseTimer(SQLModel, table=True):
    """A pending step of a case's ladder: written in the transaction that changes the case.

    ``kind`` is ``page`` (page ladder step ``step`` of ``round``) or ``contact`` (the contact
    timeout after an acknowledgement). Firing deletes the row and writes the next in one transaction.
    """

    __tablename__ = "case_timer"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(sa_column=Column(String(32), ForeignKey("escalation_case.id", ondelete="CASCADE"), index=True))
    kind: str = Field(max_length=16)
    round: int
    step: int
    due_at: datetime = Field(index=True)


class CasePage(SQLModel, table=True):
    """A page sent: its primary key (case, round, step) is the idempotency key of the page."""

    __tablename__ = "case_page"

    case_id: str = Field(
        sa_column=Column(String(32), ForeignKey("escalation_case.id", ondelete="CASCADE"), primary_key=True)
    )
    round: int = Field(primary_key=True)
    step: int = Field(primary_key=True)
    rule: int
    loop: int
    external: bool = False
    paged_at: datetime
