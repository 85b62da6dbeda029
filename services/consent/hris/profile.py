"""The recommender's view of a subject's HRIS profile, published only with ``personalization`` consent.

Kept apart from ``service.py`` so that the consent write path (``consents.service.grant``) can call
it without importing the ingress (which itself ends consents through ``consents.service``).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.consent.hris import repository as repo
from services.consent.hris.models import HrisSubject
from shared.bus.outbox import stage
from shared.events.consent import Purpose
from shared.events.hris import PersonalizationProfile, ProducerKeyring, sealed_for_the_bus


def profile_event(row: HrisSubject | None) -> PersonalizationProfile | None:
    """The subject's known profile as an event; None when nothing is known or they left."""
    if row is None or row.left_on is not None:
        return None
    if row.role_family is None and row.country is None and row.language is None:
        return None
    return PersonalizationProfile(
        pseudonym=row.pseudonym, role_family=row.role_family, country=row.country, language=row.language
    )


def on_granted(session: Session, subject: str, purpose: Purpose, event_keys: ProducerKeyring) -> None:
    """After a grant in the same transaction: a ``personalization`` grant publishes the known
    profile (sealed under the subject's event key)."""
    if purpose is not Purpose.personalization:
        return
    event = profile_event(repo.get_subject(session, subject))
    if event is not None:
        (sealed,) = sealed_for_the_bus(event_keys, [event])
        stage(session, sealed)


def export_of(session: Session, subject: str) -> dict[str, Any] | None:
    """What the HRIS told us about the subject, for their export (None: nothing)."""
    row = repo.get_subject(session, subject)
    if row is None:
        return None
    return row.model_dump(
        mode="json", include={"org_unit", "effective_from", "role_family", "country", "language", "left_on"}
    )


def forget(session: Session, subject: str) -> int:
    """Erasure: what the HRIS told us about the subject goes too (a later HRIS message re-creates it)."""
    return repo.delete_subject(session, subject)
