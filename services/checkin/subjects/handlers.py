"""Inbound events -> the same service functions the responders use."""

from __future__ import annotations

from pydantic import TypeAdapter
from sqlmodel import Session

from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.deps import CheckinContext
from services.checkin.subjects import service
from shared.app import ConsumerBinding, erasure_binding
from shared.events.consent import ConsentChange, ConsentEvent, consent_changes

NAME = "checkin"


def bindings(ctx: CheckinContext) -> list[ConsumerBinding]:
    """Erasure requests, org units and the org tree (for contributions), and consent changes (a
    withdrawal deletes what its purpose held)."""

    def erase(session: Session, pseudonym: str) -> int:
        # Consent erases the subject's event key in the bucket; forget the cached copy here.
        ctx.event_keys.evict(pseudonym)
        return service.erase(session, ctx.keys, pseudonym)

    def consent(session: Session, change: ConsentChange) -> None:
        service.on_consent_changed(session, ctx.period_key, change)

    return [
        erasure_binding(NAME, erase),
        *CONTRIBUTIONS.bindings(ctx.event_keys),  # org units (hris.subject.>) and tree (hris.org.>)
        # Opened under the subject's event key (gone: erased, read as withdrawn).
        ConsumerBinding("consent.>", TypeAdapter(ConsentEvent), consent_changes(ctx.event_keys, consent)),
    ]
