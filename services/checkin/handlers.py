"""Inbound events -> the same service functions HTTP and the responders use."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session

from services.checkin import subjects
from services.checkin.deps import CheckinContext
from shared.app import ConsumerBinding
from shared.events.consent import ConsentChanged
from shared.events.hris import HrisSubjectEvent, opened
from shared.service_kit import erasure_binding

NAME = "checkin"


def bindings(ctx: CheckinContext) -> list[ConsumerBinding]:
    """Erasure requests, org-unit assignments, and consent changes (withdrawal deletes data)."""

    def erase(session: Session, pseudonym: str) -> int:
        # Consent erases the subject's event key in the bucket; forget the cached copy here.
        ctx.event_keys.evict(pseudonym)
        return subjects.erase(session, ctx.keys, pseudonym)

    def hris(session: Session, event: Any) -> None:
        subjects.on_hris(session, event)

    def consent(session: Session, event: ConsentChanged) -> None:
        subjects.on_consent_changed(session, ctx.period_key, event)

    return [
        erasure_binding(NAME, erase),
        # opened(): v2 facts opened with the subject's event key (none: erased, dropped).
        ConsumerBinding("hris.subject.>", TypeAdapter(HrisSubjectEvent), opened(ctx.event_keys, hris)),
        ConsumerBinding("consent.>", TypeAdapter(ConsentChanged), consent),
    ]
