"""Tables of check-ins (created by migrations/versions/0002_checkin.py).

What is in the clear is only what the service must see to operate: the pseudonym (whose row),
the creation time and ISO week (retention, trend), the data key id (shredding). Answers, scores,
the step-up state (which would reveal a low score) and the note are ciphertext under the
subject's data key (``shared.datakeys``), each bound to its row and field.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from shared.datakeys import DataKey  # noqa: F401 - the FK target lives in shared.datakeys


def _key_fk() -> Column[str]:
    # ON DELETE CASCADE: destroying a subject's data key deletes every row sealed under it, and a
    # write racing an erasure fails its foreign key instead of storing unerasable ciphertext.
    return Column(String(32), ForeignKey("data_key.key_id", ondelete="CASCADE"), nullable=False, index=True)


class Checkin(SQLModel, table=True):
    __tablename__ = "checkin"
    __table_args__ = (Index("ix_checkin_pseudonym_week", "pseudonym", "iso_week"),)

    id: str = Field(primary_key=True, max_length=32)
    pseudonym: str = Field(max_length=64)
    key_id: str = Field(sa_column=_key_fk())
    created_at: datetime = Field(index=True)
    iso_week: str = Field(max_length=8)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class CheckinTrend(SQLModel, table=True):
    """Per subject, the latest WHO-5 index and mood of each recent week (a cache of ``checkin``).

    Kept so that answering a check-in with its trend reads one row, however many check-ins the
    subject has; deleted (and rebuilt on the next check-in) whenever check-ins are deleted.
    """

    __tablename__ = "checkin_trend"

    pseudonym: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(sa_column=_key_fk())
    trend: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime
