"""Answers of the HRIS webhook and import routes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HrisWebhookAccepted(BaseModel):
    webhook_id: str
    vendor: str
    events: int = Field(description="HRIS events in the message (after the vendor adapter).")
    published: int = Field(description="hris.* events staged; 0 for a replay or when nothing changed.")
    replayed: bool = Field(description="The webhook id was already processed: nothing was changed.")


class HrisImported(BaseModel):
    events: int = Field(description="HRIS events read from the batch.")
    published: int = Field(description="hris.* events staged; 0 when the batch changed nothing.")
