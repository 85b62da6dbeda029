"""SLA figures for the aggregator: time to acknowledge and time to contact, de-identified.

Each figure is one :class:`~shared.events.contribution.ContributionRecorded` (source
``escalation``, metric ``escalation_ack_hours`` / ``escalation_contact_hours``, hours since the
case opened, capped at 72, to 0.1 h) naming only the org unit in force on the Monday of the ISO
week, the week, and ``HMAC(period key, pseudonym|week)``. It is held back and released with others
in a shuffled batch without trace headers (``sla/tasks.py``), so neither order nor time points at a
case. Recorded only while the subject's ``aggregate_insights`` consent is current and HRIS has
placed them in an org unit; the aggregator's release rules (minimum group size, noise) decide what
is ever shown. The figures carry no severity: with the org unit and week it would narrow a group to
the few people who had an imminent-risk case.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from services.escalation.cases.models import Case, as_utc
from services.escalation.sla import repository as repo
from services.escalation.sla.models import PendingContribution
from shared.consent_gate import Consent
from shared.crypto import period_token
from shared.events.contribution import ContributionRecorded

MAX_HOURS = 72.0
ACK = "escalation_ack_hours"
CONTACT = "escalation_contact_hours"


def record(session: Session, gate: Any, period_key: bytes | None, case: Case, metric: str, now: datetime) -> bool:
    """Hold back one SLA figure of ``case``; False when it may not or cannot be contributed."""
    if gate is None or period_key is None or gate.answer(case.pseudonym, "aggregate_insights") is not Consent.GRANTED:
        return False
    opened = as_utc(case.opened_at)
    assert opened is not None
    year, week, _ = opened.isocalendar()
    iso_week = f"{year}-W{week:02d}"
    monday = (opened - timedelta(days=opened.weekday())).date()
    org_unit = repo.org_unit_on(session, case.pseudonym, monday)
    if org_unit is None:
        return False
    hours = round(min(MAX_HOURS, max(0.0, (now - opened).total_seconds() / 3600)), 1)
    event = ContributionRecorded(
        source="escalation",
        org_unit=org_unit,
        iso_week=iso_week,
        metric=metric,  # type: ignore[arg-type]
        value=hours,
        period_token=period_token(period_key, case.pseudonym, iso_week),
    )
    payload = json.dumps(event.model_dump(mode="json"), separators=(",", ":")).encode()
    repo.add_pending(session, PendingContribution(msg_id=str(event.event_id), subject=event.subject, payload=payload))
    return True
