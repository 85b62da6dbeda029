"""Request and response bodies of shared notes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.checkin.checkins.schemas import Strict


class NoteOpen(Strict):
    """The case whose shared note to open (the escalation service holds the sealed note)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    case_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="The escalation case id.")


class NoteOpened(BaseModel):
    text: str
