"""Opening a note an employee shared with a crisis case (``POST /v1/shared-notes/open``).

A read needs both a basis and an accountable reader:

* **basis**: the employee's current ``escalation`` consent, or their explicit request for contact
  (the case rests on it: a support request, or a check-in with "talk to someone");
* **reader**: the counsellor who holds the case in the escalation service (``ack`` made them its
  holder), asked at the moment of the read over ``rpc.escalation.casenote.v1``. The escalation
  service answers with the case's sealed note only for its holder, while the case is open.

A withdrawal or a hand-over therefore takes effect on the next read, with no copy of case state
to keep in sync here. Every read is appended to this service's audit log (the employee's access log).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.checkin.checkins.derivatives import open_sealed
from shared import audit
from shared.consent_gate import Consent
from shared.datakeys import CiphertextInvalid, DataKeyStore
from shared.errors import Conflict, ConsentRequired, Forbidden, Gone, NotFound, ServiceUnavailable
from shared.events.checkin import ConsentView
from shared.events.escalation import CaseNoteReply, CaseNoteRequest

CASE_NOTE_SUBJECT = "rpc.escalation.casenote.v1"
RETRY = {"Retry-After": "2"}


async def ask(runtime: Any, case_id: str, counsellor: str, timeout: float = 5.0) -> CaseNoteReply:
    """The escalation service's answer; 503 when it cannot be asked or does not answer."""
    bus = runtime.bus
    if bus.nc is None or not bus.connected:
        raise ServiceUnavailable("The escalation service cannot be reached; try again.", headers=RETRY)
    req = CaseNoteRequest(case_id=case_id, counsellor=counsellor)  # type: ignore[arg-type]
    try:
        msg = await bus.nc.request(CASE_NOTE_SUBJECT, req.model_dump_json().encode(), timeout=timeout)
        reply = CaseNoteReply.model_validate_json(msg.data)
    except Exception:  # noqa: BLE001 - timeout, no responders, malformed: all "try again"
        raise ServiceUnavailable("The escalation service did not answer; try again.", headers=RETRY) from None
    if reply.outcome == "error":
        raise ServiceUnavailable("The escalation service could not answer; try again.", headers=RETRY)
    return reply


def authorise(reply: CaseNoteReply, gate: ConsentView) -> CaseNoteReply:
    """Raise unless the counsellor holds the case and the employee's basis is current."""
    if reply.outcome == "not_found":
        raise NotFound("No such case.")
    if reply.outcome == "not_held":
        raise Forbidden("Only the counsellor holding this open case may read its note.", code="case-not-held")
    if reply.outcome == "no_note" or reply.pseudonym is None or reply.note is None:
        raise NotFound("No note was shared with this case.", code="no-shared-note")
    if not reply.contact_requested:
        answer = gate.answer(reply.pseudonym, "escalation")
        if answer is Consent.UNKNOWN:
            raise ServiceUnavailable("Consent state is not available yet; try again.", headers=RETRY)
        if answer is not Consent.GRANTED:
            raise ConsentRequired("escalation")
    return reply


def open_shared_note(session: Session, keys: DataKeyStore, pseudonym: str, checkin_ref: Any, sealed: Any) -> str:
    """A note the employee shared with counsellors; 410 once erasure has destroyed the key."""
    key = keys.get(session, pseudonym)
    if key is None or key.key_id != sealed.key_id:
        raise Gone("This note can no longer be read: its key was destroyed.", code="key-destroyed")
    try:
        return open_sealed(key, checkin_ref, sealed)
    except (CiphertextInvalid, ValueError):
        raise Conflict("The sealed note does not open for this subject and check-in.", code="seal-mismatch") from None


async def read_note(session: Session, keys: DataKeyStore, runtime: Any, case_id: str, counsellor: str) -> str:
    """The shared note of the case ``counsellor`` holds, opened; the read is audited."""
    reply = authorise(await ask(runtime, case_id, counsellor), runtime.gate)
    assert reply.pseudonym is not None and reply.checkin_ref is not None
    text = open_shared_note(session, keys, reply.pseudonym, reply.checkin_ref, reply.note)
    audit.append(
        session,
        actor=counsellor,
        actor_role="counsellor",
        subject=reply.pseudonym,
        action="checkin.note.read",
        purpose="escalation",
    )
    return text
