"""Profile rules: preferences, interactions and inbound signals, and what ranking reads of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from services.recommender.catalogue.entry import Entry
from services.recommender.columns import as_utc, utcnow
from services.recommender.profiles import repository as repo
from services.recommender.profiles.models import NeedSignal
from services.recommender.profiles.schemas import (
    InteractionCreate,
    InteractionRead,
    NeedsRead,
    PreferencesRead,
    PreferencesUpdate,
)
from shared.errors import NotFound
from shared.events.checkin import PersonalizationFacts, PersonalizationSubmitted
from shared.events.hris import PersonalizationProfile


@dataclass
class Signals:
    """What ranking may use about one person (never a demographic attribute)."""

    language: str | None = None
    topics: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    minutes_available: int | None = None
    needs_by_week: list[tuple[str, ...]] = field(default_factory=list)  # newest first
    country: str | None = None
    role_family: str | None = None
    dismissed: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()
    not_helpful: frozenset[str] = frozenset()
    helpful_topics: Counter[str] = field(default_factory=Counter)


def preferences(session: Session, pseudonym: str) -> PreferencesRead:
    row = repo.preference(session, pseudonym)
    if row is None:
        return PreferencesRead()
    return PreferencesRead(
        language=row.language,  # type: ignore[arg-type]
        topics=row.topics,  # type: ignore[arg-type]
        formats=row.formats,  # type: ignore[arg-type]
        minutes_available=row.minutes_available,
        updated_at=as_utc(row.updated_at),
    )


def set_preferences(session: Session, pseudonym: str, body: PreferencesUpdate) -> PreferencesRead:
    row = repo.preference_for_update(session, pseudonym)
    row.language, row.topics, row.formats = body.language, list(body.topics), list(body.formats)
    row.minutes_available, row.updated_at = body.minutes_available, utcnow()
    session.add(row)
    session.flush()  # the read below is Core: it sees what was flushed
    return preferences(session, pseudonym)


def record_interaction(session: Session, pseudonym: str, body: InteractionCreate, known: bool) -> None:
    if not known:
        raise NotFound("No such resource.")
    repo.add_interaction(session, pseudonym, body.resource_id, body.kind, utcnow())


def on_needs(session: Session, pseudonym: str, facts: PersonalizationFacts | PersonalizationSubmitted) -> None:
    """A week's needs replace that week's earlier ones (a step-up may refine them)."""
    repo.put_needs(
        session,
        NeedSignal(
            pseudonym=pseudonym,
            iso_week=facts.iso_week,
            needs=list(facts.needs),
            lang=facts.lang,
            received_at=utcnow(),
        ),
    )


def on_hris_profile(session: Session, event: PersonalizationProfile) -> None:
    """A null field was not part of this change and leaves what we know unchanged."""
    row = repo.hris_profile_for_update(session, event.pseudonym)
    for name in ("role_family", "country", "language"):
        value = getattr(event, name)
        if value is not None:
            setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)


def signals(session: Session, pseudonym: str, catalogue: Mapping[str, Entry]) -> Signals:
    """``catalogue`` by resource id (the snapshot's ``by_id``): only the person's own
    interactions are looked up in it, so a request costs the same with 60 or 10,000 resources."""
    preference, hris = repo.preference(session, pseudonym), repo.hris_profile(session, pseudonym)
    dismissed, completed, not_helpful = set(), set(), set()
    helpful_topics: Counter[str] = Counter()
    for row in repo.interactions(session, pseudonym):
        resource_id, kind = row.resource_id, row.kind
        if kind == "dismissed":
            dismissed.add(resource_id)
        elif kind == "completed":
            completed.add(resource_id)
        elif kind == "not_helpful":
            not_helpful.add(resource_id)
        elif kind == "helpful":
            entry = catalogue.get(resource_id)  # None once the resource was deleted
            helpful_topics.update(entry.topics if entry else ())
    return Signals(
        language=(preference.language if preference else None) or (hris.language if hris else None),
        topics=tuple(preference.topics) if preference else (),
        formats=tuple(preference.formats) if preference else (),
        minutes_available=preference.minutes_available if preference else None,
        needs_by_week=[tuple(n.needs) for n in repo.needs(session, pseudonym)],
        country=hris.country if hris else None,
        role_family=hris.role_family if hris else None,
        dismissed=frozenset(dismissed),
        completed=frozenset(completed),
        not_helpful=frozenset(not_helpful),
        helpful_topics=helpful_topics,
    )


def export_of(session: Session, pseudonym: str) -> dict[str, Any]:
    hris = repo.hris_profile(session, pseudonym)
    return {
        "preferences": preferences(session, pseudonym).model_dump(mode="json"),
        "needs": [NeedsRead(iso_week=n.iso_week, needs=n.needs).model_dump() for n in repo.needs(session, pseudonym)],
        "hris": None
        if hris is None
        else {"role_family": hris.role_family, "country": hris.country, "language": hris.language},
        "interactions": [
            InteractionRead(resource_id=i.resource_id, kind=i.kind, at=as_utc(i.at)).model_dump(mode="json")  # type: ignore[arg-type]
            for i in repo.interactions(session, pseudonym)
        ],
    }
