"""Request/reply contracts of the escalation service (core NATS, never stored in a stream).

* ``rpc.consent.contact.v1`` (escalation -> consent): a counsellor who holds a case confirmed it;
  consent releases the employee's contact details and writes the release to its audit log, which
  the employee reads in ``GET /v1/me/access-log``.
* ``rpc.escalation.casenote.v1`` (checkin -> escalation): may this counsellor open the note shared
  with this case? Escalation answers from its case state; check-in opens and audits the read.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.checkin import SealedText
from shared.events.consent import PSEUDONYM_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactRequest(_Strict):
    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    counsellor: str = Field(pattern=PSEUDONYM_PATTERN, description="Pseudonym of the counsellor holding the case.")
    case_id: UUID
    basis: Literal["consent", "contact_requested"]


class ContactReply(_Strict):
    outcome: Literal["released", "none_given", "consent_required", "error"]
    contact: dict[str, str] | None = None


class CaseNoteRequest(_Strict):
    case_id: UUID
    counsellor: str = Field(pattern=PSEUDONYM_PATTERN)


class CaseNoteReply(_Strict):
    outcome: Literal["granted", "not_found", "not_held", "no_note", "error"]
    pseudonym: str | None = Field(default=None, pattern=PSEUDONYM_PATTERN)
    checkin_ref: UUID | None = None
    note: SealedText | None = None
    contact_requested: bool = False
