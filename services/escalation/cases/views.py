"""What a counsellor sees of a case: triage fields for anyone on duty, the rest for its holder.

The employee's own words (a request's note, the contact they gave) are opened only for the
counsellor holding the case, and each such read is written to the audit log the employee reads.
"""

from __future__ import annotations

import json

from sqlmodel import Session

from services.escalation.cases import repository as repo
from services.escalation.cases import service
from services.escalation.cases.models import OPEN_STATES, Case, as_utc
from services.escalation.cases.schemas import CaseRead, CaseSummary, HistoryEntry, SupportRequestRead
from services.escalation.deps import EscalationContext

EMPLOYEE_WORDS = ("requested",)  # history lines whose text the employee wrote (audited when read)


def summary(case: Case, me: str) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        severity=case.severity,  # type: ignore[arg-type]
        state=case.state,  # type: ignore[arg-type]
        source=case.source,  # type: ignore[arg-type]
        reasons=[r for r in case.reasons.split(",") if r],
        opened_at=as_utc(case.opened_at),  # type: ignore[arg-type]
        acknowledged=case.acked_at is not None,
        held_by_me=case.assignee == me,
        held=case.assignee is not None,
    )


def detail(session: Session, ctx: EscalationContext, case: Case, me: str) -> CaseRead:
    holder = case.assignee == me and case.state in OPEN_STATES
    history = []
    read_words = False
    for row in repo.history(session, case.id):
        text = None
        if holder and row.sealed is not None and row.action != "contact_given":
            text = service.open_text(session, ctx, case, row)
            read_words = read_words or (text is not None and row.action in EMPLOYEE_WORDS)
        history.append(
            HistoryEntry(
                at=as_utc(row.at),  # type: ignore[arg-type]
                action=row.action,
                actor_role=row.actor_role,
                by_me=row.actor == me,
                reason=row.reason,
                text=text,
            )
        )
    if read_words:
        service.audit_read(session, case, me, "case.request.read")
    base = summary(case, me).model_dump()
    return CaseRead(
        **base,
        round=case.round,
        acked_at=as_utc(case.acked_at),
        confirmed_at=as_utc(case.confirmed_at),
        contacted_at=as_utc(case.contacted_at),
        closed_at=as_utc(case.closed_at),
        close_reason=case.close_reason,
        has_shared_note=case.shared_note is not None,
        preferred_channel=case.preferred_channel,  # type: ignore[arg-type]
        preferred_time=case.preferred_time,
        pages=repo.page_count(session, case.id),
        policy=json.loads(case.policy),
        history=history,
    )


def for_employee(case: Case, hold_days: float) -> SupportRequestRead:
    return SupportRequestRead(
        id=case.id,
        state=case.state,  # type: ignore[arg-type]
        severity=case.severity,  # type: ignore[arg-type]
        source=case.source,  # type: ignore[arg-type]
        opened_at=as_utc(case.opened_at),  # type: ignore[arg-type]
        updated_at=as_utc(case.updated_at),  # type: ignore[arg-type]
        contacted_at=as_utc(case.contacted_at),
        closed_at=as_utc(case.closed_at),
        legal_hold_until=as_utc(case.legal_hold_until),
        legal_hold_applies=hold_days > 0 and case.confirmed_at is not None and case.state != "dismissed",
    )
