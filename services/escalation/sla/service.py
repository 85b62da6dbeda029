"""SLA figures for the aggregator: time to acknowledge and time to contact, de-identified.

Each figure is one :class:`~shared.events.contribution.ContributionRecorded` (source
``escalation``, metric ``escalation_ack_hours`` / ``escalation_contact_hours``, hours since the
case opened, capped at 72, to 0.1 h) naming only the org unit in force on the Monday of the ISO
week, the week, and ``HMAC(period key, pseudonym|week)``. It is held back and released with others
in a shuffled batch without trace headers (``shared.contributions``, which also rolls a unit with
fewer than k members up to an ancestor), so neither order nor time points at a case. Recorded
only while the subject's ``aggregate_insights`` consent is current and HRIS has placed them in an
org unit; the aggregator's release rules (minimum group size, noise) decide what
is ever shown. The figures carry no severity: with the org unit and week it would narrow a group to
the few people who had an imminent-risk case.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from services.escalation.cases.models import Case, as_utc
from services.escalation.sla.models import CONTRIBUTIONS
from shared.consent_gate import Consent
from shared.contributions.producer import PURPOSE
from shared.events.checkin import ConsentView

MAX_HOURS = 72.0
ACK = "escalation_ack_hours"
CONTACT = "escalation_contact_hours"


def record(
    session: Session, gate: ConsentView | None, period_key: bytes | None, case: Case, metric: str, now: datetime
) -> bool:
    """Hold back one SLA figure of ``case``; False when it may not or cannot be contributed."""
    if gate is None or period_key is None or gate.answer(case.pseudonym, PURPOSE) is not Consent.GRANTED:
        return False
    opened = as_utc(case.opened_at)
    assert opened is not None
    hours = round(min(MAX_HOURS, max(0.0, (now - opened).total_seconds() / 3600)), 1)
    return CONTRIBUTIONS.hold(session, period_key, case.pseudonym, opened.date(), [(metric, hours)])
