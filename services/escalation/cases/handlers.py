"""Inbound events and requests: screening flags, consent changes, erasure, export, note access.

The flag consumer never acknowledges what it did not apply: while the consent gate has not synced
it cannot tell a withdrawn subject from one it has not read yet, so :func:`gated` puts the flag
back (``NotYet``) for a later delivery; it is dropped only when the gate *knows* the flow is not
allowed (no ``escalation`` consent and no request for contact).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sqlmodel import Session

from services.escalation.cases import repository as repo
from services.escalation.cases import service
from services.escalation.cases.models import Case, as_utc
from services.escalation.deps import EscalationContext
from services.escalation.sla.models import CONTRIBUTIONS
from shared import audit
from shared.app import ConsumerBinding, Runtime, erasure_binding
from shared.events.checkin import EscalationFacts, EscalationFlagged, EscalationFlaggedV2, gated_sealed
from shared.events.consent import ConsentChange, ConsentEvent, consent_changes
from shared.events.escalation import CaseNoteReply, CaseNoteRequest
from shared.webhooks import forget_subject

log = logging.getLogger("kinwell.escalation")
FLAGS: TypeAdapter[Any] = TypeAdapter(
    Annotated[EscalationFlagged | EscalationFlaggedV2, Field(discriminator="type")]  # v1: copies still in the stream
)
NAME = "escalation"


def _now() -> datetime:
    return datetime.now(UTC)


def bindings(ctx: EscalationContext, rt: Runtime) -> list[ConsumerBinding]:
    gate = rt.gate
    ctx.event_keys.attach(rt.bus)  # before the flag consumer starts (bindings run on the event loop)

    assert gate is not None, "the escalation service runs with a consent gate"

    def flagged(session: Session, event: Any, facts: EscalationFacts | None) -> None:
        # v2 (sealed): opened with the subject's event key by gated_sealed; v1 copies as they are.
        flag = event.unsealed(facts) if isinstance(event, EscalationFlaggedV2) and facts else event
        service.open_from_flag(session, ctx, flag, _now())

    platform = ctx.settings.platform
    period_key = platform.secret("period_key") if "period_key" in platform.held_secrets() else None

    def consent(session: Session, change: ConsentChange) -> None:
        if change.purpose == "escalation" and change.ended:
            service.withdraw_consent_cases(session, change.pseudonym, _now())
        elif period_key is not None:  # aggregate_insights ended: this week's SLA figures go
            CONTRIBUTIONS.on_consent_changed(session, period_key, change)

    return [
        erasure_binding(NAME, lambda s, p: erase(s, ctx, p)),
        *CONTRIBUTIONS.bindings(ctx.event_keys),  # org units and tree of the SLA contributions
        # gated_sealed(): opens the sealed facts (no key: the subject was erased -> dropped), then
        # granted (or the employee asked for contact) -> applied; denied -> acknowledged and
        # dropped; unknown (gate not synced) -> NotYet, put back uncounted and judged again later.
        ConsumerBinding("checkin.escalation.>", FLAGS, gated_sealed(gate, ctx.event_keys, flagged)),
        # Opened under the subject's event key (gone: erased, read as withdrawn).
        ConsumerBinding("consent.>", TypeAdapter(ConsentEvent), consent_changes(ctx.event_keys, consent)),
    ]


def _held(case: Case, hold_days: float) -> bool:
    return hold_days > 0 and case.confirmed_at is not None and case.state != "dismissed"


def erase(session: Session, ctx: EscalationContext, pseudonym: str) -> int:
    """Delete the subject's cases, except those under a legal hold (kept until the hold ends,
    with their key, then purged by ``purge_expired_holds``); pages still queued go too."""
    now = _now()
    hold = ctx.settings.legal_hold_days
    cases = repo.cases_of(session, pseudonym)
    kept = [c for c in cases if _held(c, hold)]
    for case in kept:
        end = (as_utc(case.closed_at) or now) + timedelta(days=hold)
        case.legal_hold_until = max(as_utc(case.legal_hold_until) or end, end)
        session.add(case)
        service._event(session, case, "erasure_deferred", now, reason="legal_hold")
    removed = repo.delete_cases(session, [c.id for c in cases if c not in kept])
    removed += CONTRIBUTIONS.erase(session, pseudonym)
    if not kept:
        removed += ctx.keys.destroy(session, pseudonym)
    return removed + forget_subject(session, pseudonym)


def purge_expired_holds(session: Session, ctx: EscalationContext, now: datetime) -> int:
    """Cases kept under a legal hold after an erasure request go once the hold has ended."""
    expired = repo.held_cases_due(session, now)
    subjects = {c.pseudonym for c in expired}
    removed = repo.delete_cases(session, [c.id for c in expired])
    for pseudonym in subjects:
        if not repo.cases_of(session, pseudonym):
            removed += ctx.keys.destroy(session, pseudonym)
    return removed


def export(session: Session, ctx: EscalationContext, pseudonym: str) -> dict[str, Any]:
    """The subject's cases, their full history (with the texts, opened for them), every access, and
    the org-unit history their SLA contributions are attributed by."""
    items = []
    for case in repo.cases_of(session, pseudonym):
        history = [
            {
                "at": as_utc(row.at).isoformat(),  # type: ignore[union-attr]
                "action": row.action,
                "actor_role": row.actor_role,
                "reason": row.reason,
                "text": service.open_text(session, ctx, case, row),
            }
            for row in repo.history(session, case.id)
        ]
        items.append(
            {
                "id": case.id,
                "source": case.source,
                "severity": case.severity,
                "reasons": [r for r in case.reasons.split(",") if r],
                "state": case.state,
                "opened_at": as_utc(case.opened_at).isoformat(),  # type: ignore[union-attr]
                "closed_at": case.closed_at and as_utc(case.closed_at).isoformat(),  # type: ignore[union-attr]
                "legal_hold_until": case.legal_hold_until and as_utc(case.legal_hold_until).isoformat(),  # type: ignore[union-attr]
                "history": history,
            }
        )
    accesses = audit.access_log(session, pseudonym)["entries"]
    assignments = CONTRIBUTIONS.export(session, pseudonym)
    if not (items or accesses or assignments):
        return {}
    return {"cases": items, "accesses": accesses, "org_assignments": assignments}


def case_note(session: Session, req: CaseNoteRequest) -> CaseNoteReply:
    """Check-in asks before opening a shared note: only for the counsellor holding the open case."""
    case = session.get(Case, req.case_id.hex)
    if case is None:
        return CaseNoteReply(outcome="not_found")
    if case.assignee != req.counsellor or case.closed_at is not None:
        return CaseNoteReply(outcome="not_held")
    if case.shared_note is None or case.checkin_ref is None:
        return CaseNoteReply(outcome="no_note")
    from shared.events.checkin import SealedText

    return CaseNoteReply(
        outcome="granted",
        pseudonym=case.pseudonym,
        checkin_ref=case.checkin_ref,  # type: ignore[arg-type]
        note=SealedText.model_validate_json(case.shared_note),
        contact_requested=case.basis == "contact_requested",
    )


def start_case_note_responder(rt: Runtime) -> Any:
    async def handle(msg: Any) -> None:
        def answer() -> CaseNoteReply:
            req = CaseNoteRequest.model_validate_json(msg.data)
            with Session(rt.engine) as session:
                return case_note(session, req)

        try:
            reply = await asyncio.to_thread(answer)
        except ValidationError:
            reply = CaseNoteReply(outcome="error")
        except Exception as exc:  # noqa: BLE001 - always answer; the type only in the log
            log.warning("case note check failed", extra={"error_type": type(exc).__name__})
            reply = CaseNoteReply(outcome="error")
        await msg.respond(reply.model_dump_json().encode())

    return handle
