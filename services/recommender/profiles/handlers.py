"""Inbound events -> the same profile functions the HTTP side uses."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session

from services.recommender import subjects
from services.recommender.engagement.models import CONTRIBUTIONS
from services.recommender.profiles import service
from shared.app import ConsumerBinding
from shared.eventkeys import EventKeyring
from shared.events.checkin import (
    ConsentView,
    PersonalizationFacts,
    PersonalizationSubmitted,
    PersonalizationSubmittedV2,
    gated,
    gated_sealed,
)
from shared.events.consent import ConsentChange, ConsentEvent, consent_changes
from shared.events.hris import HrisProfileEvent, opened

PURPOSE = "personalization"


def bindings(gate: ConsentView, event_keys: EventKeyring, period_key: bytes) -> list[ConsumerBinding]:
    """Needs from check-ins and the HRIS profile (both under ``personalization``, checked again
    here), consent changes (an ended consent deletes what was held only for it), and the org
    units and tree of the engagement counters (``shared.contributions``)."""

    def needs(session: Session, event: Any, facts: PersonalizationFacts | None) -> None:
        # v2: the facts were opened with the subject's event key (no key: erased, dropped).
        if isinstance(event, PersonalizationSubmittedV2):
            if facts is not None:
                service.on_needs(session, event.pseudonym, facts)
            return
        service.on_needs(session, event.pseudonym, event)

    def consent(session: Session, change: ConsentChange) -> None:
        if change.ended:
            subjects.forget(session, change.pseudonym, change.purpose)
            CONTRIBUTIONS.on_consent_changed(session, period_key, change)  # engagement counters

    return [
        ConsumerBinding(
            "checkin.personalization.>",
            TypeAdapter(PersonalizationSubmittedV2 | PersonalizationSubmitted),
            gated_sealed(gate, event_keys, needs),
        ),
        # gated: a profile read while the gate is not synced is put back, not dropped as denied;
        # opened (only once granted): v2 facts opened with the subject's event key (none: dropped).
        ConsumerBinding(
            "hris.personalization.>",
            TypeAdapter(HrisProfileEvent),
            gated(gate, opened(event_keys, service.on_hris_profile), purpose=PURPOSE),
        ),
        # Opened under the subject's event key (gone: erased, read as withdrawn).
        ConsumerBinding("consent.>", TypeAdapter(ConsentEvent), consent_changes(event_keys, consent)),
        *CONTRIBUTIONS.bindings(event_keys),
    ]
