"""The rules of a case: opening (from a flag or a request), the counsellor's actions, history.

Every change writes a history line and moves the ladder in the same transaction; the caller's
unit of work commits. A counsellor acts on a case only while holding it (``ack`` takes it), so
each action, and each read of what the employee wrote, is tied to one accountable person.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session

from services.escalation.cases import repository as repo
from services.escalation.cases.models import CLOSED_STATES, OPEN_STATES, SEVERITY_RANK, Case, CaseEvent
from services.escalation.deps import EscalationContext
from services.escalation.ladder import service as ladder
from services.escalation.sla import service as sla
from shared import audit
from shared.datakeys import DataKey, SubjectKey
from shared.errors import Conflict, Forbidden, NotFound
from shared.events.checkin import EscalationFlagged

# Check-in's screening severities, in the escalation service's triage terms.
FROM_SCREENING = {"critical": "imminent", "high": "high", "routine": "moderate"}
SYSTEM = "system"


def _event(
    session: Session,
    case: Case,
    action: str,
    now: datetime,
    *,
    actor: str = SYSTEM,
    role: str = SYSTEM,
    reason: str | None = None,
    text: str | None = None,
    ctx: EscalationContext | None = None,
) -> None:
    row = CaseEvent(case_id=case.id, at=now, action=action, actor=actor, actor_role=role, reason=reason)
    if text is not None:
        assert ctx is not None
        key = _subject_key(session, ctx, case.pseudonym)
        row.key_id = key.key_id
        row.sealed = key.seal(text.encode(), "case_event", case.id, action)
    repo.add(session, row)


def _subject_key(session: Session, ctx: EscalationContext, pseudonym: str) -> SubjectKey:
    """The subject's data key, created in the caller's transaction if missing (not in one of its
    own, as check-in does: on SQLite a second writer would wait for this very transaction)."""
    key = ctx.keys.get(session, pseudonym)
    if key is not None:
        return key
    dek = AESGCM.generate_key(bit_length=256)
    key_id = uuid.uuid4().hex
    kek_id, wrapped = ctx.keys.master.wrap(dek, pseudonym, key_id)
    session.add(DataKey(key_id=key_id, pseudonym=pseudonym, kek_id=kek_id, wrapped=wrapped))
    session.flush()
    return SubjectKey.of(key_id, pseudonym, dek)  # not cached: the row may yet roll back


def open_text(session: Session, ctx: EscalationContext, case: Case, row: CaseEvent) -> str | None:
    if row.sealed is None:
        return None
    key = ctx.keys.get(session, case.pseudonym)
    if key is None or key.key_id != row.key_id:
        return None
    return key.open(row.sealed, "case_event", case.id, row.action).decode()


def _new_case(ctx: EscalationContext, session: Session, pseudonym: str, now: datetime, **fields: Any) -> Case:
    policy, rosters = ladder.snapshot(session, ctx.settings.default_policy)
    case = Case(
        id=uuid.uuid4().hex,
        pseudonym=pseudonym,
        severity_rank=SEVERITY_RANK[fields["severity"]],
        opened_at=now,
        updated_at=now,
        policy=policy,
        rosters=rosters,
        **fields,
    )
    repo.add(session, case)
    session.flush()
    return case


def open_from_flag(session: Session, ctx: EscalationContext, event: EscalationFlagged, now: datetime) -> Case:
    """A screening flag: a *proposed* case (a counsellor must confirm it), or *confirmed* when the
    employee asked to talk. A later flag of the same check-in adds to its open case."""
    severity = FROM_SCREENING[event.severity]
    reasons = [r for r in event.reasons]
    note = event.note.model_dump_json() if event.note else None
    existing = repo.open_case_for_checkin(session, event.pseudonym, str(event.checkin_ref))
    if existing is not None:
        merged = sorted(set(existing.reasons.split(",")) | set(reasons) - {""})
        existing.reasons = ",".join(merged)
        if SEVERITY_RANK[severity] < existing.severity_rank:
            existing.severity, existing.severity_rank = severity, SEVERITY_RANK[severity]
        existing.shared_note = note or existing.shared_note
        if event.contact_requested and existing.state == "proposed":
            existing.state, existing.basis, existing.confirmed_at = "confirmed", "contact_requested", now
        existing.updated_at = now
        repo.add(session, existing)
        _event(session, existing, "reflagged", now, reason=severity)
        return existing
    asked = event.contact_requested
    case = _new_case(
        ctx,
        session,
        event.pseudonym,
        now,
        source="flag",
        basis="contact_requested" if asked else "consent",
        checkin_ref=str(event.checkin_ref),
        severity=severity,
        reasons=",".join(sorted(set(reasons))),
        state="confirmed" if asked else "proposed",
        confirmed_at=now if asked else None,
        shared_note=note,
    )
    _event(session, case, "opened", now, reason=severity)
    ladder.start(session, case, now, ctx.settings.console_url)
    return case


def open_from_request(session: Session, ctx: EscalationContext, pseudonym: str, body: Any, now: datetime) -> Case:
    """The employee asked for contact: a confirmed case, whatever their consents."""
    case = _new_case(
        ctx,
        session,
        pseudonym,
        now,
        source="request",
        basis="contact_requested",
        severity="high" if body.urgent else "moderate",
        reasons="contact_requested",
        state="confirmed",
        confirmed_at=now,
        preferred_channel=body.preferred_channel,
        preferred_time=body.preferred_time,
    )
    _event(session, case, "requested", now, actor="subject", role="employee", text=body.note, ctx=ctx)
    if body.contact is not None and body.contact.model_dump(exclude_none=True):
        _event(
            session,
            case,
            "contact_given",
            now,
            actor="subject",
            role="employee",
            text=body.contact.model_dump_json(exclude_none=True),
            ctx=ctx,
        )
    ladder.start(session, case, now, ctx.settings.console_url)
    return case


# --- counsellor actions ---------------------------------------------------------------------------


def get_open(session: Session, case_id: str) -> Case:
    case = repo.lock_case(session, case_id)
    if case is None:
        raise NotFound("No such case.")
    return case


def _held(case: Case, counsellor: str) -> None:
    if case.state in CLOSED_STATES:
        raise Conflict("This case is closed.", code="case-closed")
    if case.assignee is None:
        raise Conflict("Acknowledge the case first: that makes you its holder.", code="case-not-held")
    if case.assignee != counsellor:
        raise Forbidden(
            "Another counsellor holds this case; acknowledge it to take it over.", code="case-held-by-another"
        )


def _sla(session: Session, ctx: EscalationContext | None, case: Case, metric: str, now: datetime) -> None:
    if ctx is None:
        return
    platform = ctx.settings.platform
    period_key = platform.secret("period_key") if "period_key" in platform.held_secrets() else None
    sla.record(session, getattr(ctx.runtime, "gate", None), period_key, case, metric, now)


def acknowledge(
    session: Session, case_id: str, counsellor: str, now: datetime, ctx: EscalationContext | None = None
) -> Case:
    """Take the case (or take it over): stops the paging, starts the contact timeout."""
    case = get_open(session, case_id)
    if case.state in CLOSED_STATES:
        raise Conflict("This case is closed.", code="case-closed")
    if case.acked_at is not None and case.assignee == counsellor:
        return case  # idempotent
    first = case.first_acked_at is None
    case.assignee, case.acked_at, case.updated_at = counsellor, now, now
    case.first_acked_at = case.first_acked_at or now
    repo.add(session, case)
    if first:
        _sla(session, ctx, case, sla.ACK, now)
    _event(session, case, "acknowledged", now, actor=counsellor, role="counsellor")
    ladder.acknowledged(session, case, now)
    return case


def check_confirm(session: Session, case_id: str, counsellor: str) -> Case:
    """May this counsellor confirm (and so see contact details)? Raises if not; nothing changes."""
    case = get_open(session, case_id)
    _held(case, counsellor)
    if case.state not in ("proposed", "confirmed", "contacted"):
        raise Conflict("Only an open case can be confirmed.", code="invalid-transition")
    return case


def confirm(session: Session, case: Case, counsellor: str, now: datetime, contact_source: str) -> Case:
    if case.state == "proposed":
        case.state, case.confirmed_at = "confirmed", now
    case.updated_at = now
    repo.add(session, case)
    _event(session, case, "confirmed", now, actor=counsellor, role="counsellor", reason=contact_source)
    return case


def dismiss(session: Session, ctx: EscalationContext, case_id: str, counsellor: str, body: Any, now: datetime) -> Case:
    case = get_open(session, case_id)
    _held(case, counsellor)
    if case.state not in ("proposed", "confirmed"):
        raise Conflict("Only a proposed or confirmed case can be dismissed.", code="invalid-transition")
    return _close(session, ctx, case, "dismissed", body, counsellor, now)


def mark_contacted(
    session: Session, case_id: str, counsellor: str, now: datetime, ctx: EscalationContext | None = None
) -> Case:
    case = get_open(session, case_id)
    _held(case, counsellor)
    if case.state != "confirmed":
        raise Conflict("Only a confirmed case can be marked contacted.", code="invalid-transition")
    case.state, case.contacted_at, case.updated_at = "contacted", now, now
    repo.add(session, case)
    _event(session, case, "contacted", now, actor=counsellor, role="counsellor")
    _sla(session, ctx, case, sla.CONTACT, now)
    ladder.contacted(session, case)
    return case


def resolve(session: Session, ctx: EscalationContext, case_id: str, counsellor: str, body: Any, now: datetime) -> Case:
    case = get_open(session, case_id)
    _held(case, counsellor)
    if case.state not in ("confirmed", "contacted"):
        raise Conflict("Confirm the case before resolving it (or dismiss it).", code="invalid-transition")
    return _close(session, ctx, case, "resolved", body, counsellor, now)


def _close(
    session: Session, ctx: EscalationContext, case: Case, state: str, body: Any, who: str, now: datetime
) -> Case:
    case.state, case.closed_at, case.close_reason, case.updated_at = state, now, body.reason, now
    case.shared_note = None  # the case no longer needs the employee's words
    repo.add(session, case)
    _event(session, case, state, now, actor=who, role="counsellor", reason=body.reason, text=body.text, ctx=ctx)
    ladder.closed(session, case, state)
    return case


def add_note(session: Session, ctx: EscalationContext, case_id: str, counsellor: str, text: str, now: datetime) -> Case:
    case = get_open(session, case_id)
    _held(case, counsellor)
    case.updated_at = now
    repo.add(session, case)
    _event(session, case, "note", now, actor=counsellor, role="counsellor", text=text, ctx=ctx)
    return case


def withdraw_consent_cases(session: Session, pseudonym: str, now: datetime) -> int:
    """``escalation`` withdrawn: open cases that rest on it alone close, their timers with them."""
    cases = repo.open_consent_cases(session, pseudonym)
    for case in cases:
        case.state, case.closed_at, case.close_reason, case.updated_at = "withdrawn", now, "consent_withdrawn", now
        case.shared_note = None
        repo.add(session, case)
        _event(session, case, "withdrawn", now, reason="consent_withdrawn")
        ladder.closed(session, case, "withdrawn")
    return len(cases)


def audit_read(session: Session, case: Case, counsellor: str, action: str) -> None:
    """A counsellor read what the employee wrote or how to reach them: in their access log."""
    audit.append(
        session,
        actor=counsellor,
        actor_role="counsellor",
        subject=case.pseudonym,
        action=f"{action}:{case.id}",
        purpose="escalation",
    )


__all__ = ["OPEN_STATES", "FROM_SCREENING"]
