"""Inbound events -> the same profile functions the HTTP side uses."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session

from services.recommender import subjects
from services.recommender.profiles import service
from shared.app import ConsumerBinding
from shared.events.checkin import PersonalizationSubmitted, gated
from shared.events.consent import ConsentChanged
from shared.events.hris import PersonalizationProfile

PURPOSE = "personalization"


def bindings(gate: Any) -> list[ConsumerBinding]:
    """Needs from check-ins and the HRIS profile (both under ``personalization``, checked again
    here), and consent changes (an ended consent deletes what was held only for it)."""

    def consent(session: Session, event: ConsentChanged) -> None:
        if event.state != "granted":
            subjects.forget(session, event.pseudonym, event.purpose)

    return [
        ConsumerBinding(
            "checkin.personalization.>", TypeAdapter(PersonalizationSubmitted), gated(gate, service.on_needs)
        ),
        # gated: a profile read while the gate is not synced is put back, not dropped as denied.
        ConsumerBinding(
            "hris.personalization.>",
            TypeAdapter(PersonalizationProfile),
            gated(gate, service.on_hris_profile, purpose=PURPOSE),
        ),
        ConsumerBinding("consent.>", TypeAdapter(ConsentChanged), consent),
    ]
