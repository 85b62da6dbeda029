"""Purpose-scoped derivatives of a check-in, each produced only under its own consent.

* ``personalization`` -> needs (never the note) for the recommender;
* ``escalation``, or the employee's explicit request to talk -> a flag for escalation, with the
  note only if they chose to share it, sealed under their data key;
* ``aggregate_insights`` -> de-identified contributions (org unit, ISO week, metric, value,
  per-period token), held back and released in shuffled batches (``shared.contributions``).

The gate is asked here, at the producer, and again by every consumer (``shared.events.checkin.
gated``); crisis resources never depend on any of this.
"""

from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID

from services.checkin.checkins import screening
from services.checkin.checkins.scoring import Scores
from shared.contributions.producer import Draft
from shared.crypto import period_token
from shared.datakeys import SubjectKey
from shared.events.checkin import (
    ConsentView,
    EscalationFacts,
    EscalationFlaggedV2,
    PersonalizationFacts,
    PersonalizationSubmittedV2,
    Produced,
    SealedText,
)


def note_context(checkin_ref: UUID | str) -> tuple[str, str, str]:
    return ("escalation_note", str(checkin_ref), "note")


def seal_for_counsellor(key: SubjectKey, checkin_ref: UUID, note: str) -> SealedText:
    blob = key.seal(note.encode("utf-8"), *note_context(checkin_ref))
    return SealedText(key_id=key.key_id, blob=base64.urlsafe_b64encode(blob).decode("ascii").rstrip("="))


def open_sealed(key: SubjectKey, checkin_ref: UUID, sealed: SealedText) -> str:
    raw = base64.urlsafe_b64decode(sealed.blob + "=" * (-len(sealed.blob) % 4))
    return key.open(raw, *note_context(checkin_ref)).decode("utf-8")


def escalation(
    gate: ConsentView,
    key: SubjectKey,
    event_key: SubjectKey,
    *,
    checkin_ref: str,
    reasons: list[str],
    contact_requested: bool,
    note: str | None,
    share_note: bool,
    locale: screening.Locale,
    now: datetime,
) -> Produced | None:
    """A flag when risk fired under ``escalation`` consent, or whenever the employee asked; all
    but the pseudonym and reference sealed under the subject's event key (``event_key``), the
    shared note also under their check-in data key (``key``: only check-in opens it)."""
    if not contact_requested and not (reasons and gate.allowed(key.pseudonym, "escalation")):
        return None
    all_reasons = [*reasons, "contact_requested"] if contact_requested else list(reasons)
    ref = UUID(checkin_ref)
    facts = EscalationFacts(
        severity=screening.severity(reasons),  # type: ignore[arg-type]
        reasons=all_reasons,  # type: ignore[arg-type]
        contact_requested=contact_requested,
        lang=locale.lang,
        country=locale.country,
        flagged_at=now,
        note=seal_for_counsellor(key, ref, note) if share_note and note else None,
    )
    return Produced(EscalationFlaggedV2.seal_for(event_key, facts, pseudonym=key.pseudonym, checkin_ref=ref), facts)


def needs(scores: Scores, from_note: frozenset[str] = frozenset()) -> list[str]:
    return sorted(screening.needs_from_scores(scores) | from_note)


def personalization(
    gate: ConsentView, event_key: SubjectKey, lang: str, week: str, found: list[str]
) -> Produced | None:
    pseudonym = event_key.pseudonym
    if not gate.allowed(pseudonym, "personalization"):
        return None
    facts = PersonalizationFacts(lang=lang, iso_week=week, needs=found)  # type: ignore[arg-type]
    return Produced(PersonalizationSubmittedV2.seal_for(event_key, facts, pseudonym=pseudonym), facts)


def contributions(gate: ConsentView, period_key: bytes, pseudonym: str, week: str, scores: Scores) -> list[Draft]:
    """WHO-5 index and mood only: step-up scores stay with the individual (taking part in a
    step-up would itself reveal a low score to anyone who can count contributions)."""
    if not gate.allowed(pseudonym, "aggregate_insights"):
        return []
    token = period_token(period_key, pseudonym, week)
    return [
        Draft("who5_index", float(scores.who5_index), token),
        Draft("mood", float(scores.mood), token),
    ]
