"""Every query on the personalisation tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import String, bindparam
from sqlmodel import Session, col, delete

from services.recommender.profiles.models import HrisProfile, Interaction, NeedSignal, Preference

NEED_WEEKS_KEPT = 8
INTERACTIONS_KEPT = 500

# Every read is one of these Core statements, built once (compiled once, then served from
# SQLAlchemy's statement cache), whoever reads: the ranking on every recommendation, the profile,
# the export, the trims. Rows, not entities: two ORM loads of a person's preference and HRIS
# profile cost ~300 µs against ~80 µs for these two statements (in process, bench_recommender's
# database), and the recommender's CPU per request rose 1.3-2x with them at 250/s. Entities are
# loaded only to be changed (``*_for_update``), and Core reads see only what was flushed.
_PREF = Preference.__table__  # type: ignore[attr-defined]
_PREFERENCE = sa.select(
    _PREF.c.language, _PREF.c.topics, _PREF.c.formats, _PREF.c.minutes_available, _PREF.c.updated_at
).where(_PREF.c.pseudonym == bindparam("pseudonym", type_=String))
_HRIS_TABLE = HrisProfile.__table__  # type: ignore[attr-defined]
_HRIS = sa.select(_HRIS_TABLE.c.role_family, _HRIS_TABLE.c.country, _HRIS_TABLE.c.language).where(
    _HRIS_TABLE.c.pseudonym == bindparam("pseudonym", type_=String)
)
_NEED = NeedSignal.__table__  # type: ignore[attr-defined]
_NEEDS = (
    sa.select(_NEED.c.iso_week, _NEED.c.needs)
    .where(_NEED.c.pseudonym == bindparam("pseudonym", type_=String))
    .order_by(_NEED.c.iso_week.desc())
)
_INTERACTION = Interaction.__table__  # type: ignore[attr-defined]
_INTERACTIONS = (
    sa.select(_INTERACTION.c.id, _INTERACTION.c.resource_id, _INTERACTION.c.kind, _INTERACTION.c.at)
    .where(_INTERACTION.c.pseudonym == bindparam("pseudonym", type_=String))
    .order_by(_INTERACTION.c.at.desc(), _INTERACTION.c.id.desc())
    .limit(INTERACTIONS_KEPT)
)


def preference(session: Session, pseudonym: str) -> sa.Row[*tuple[Any, ...]] | None:
    """The person's preferences (``language``, ``topics``, ``formats``, ``minutes_available``,
    ``updated_at``), or None."""
    return session.connection().execute(_PREFERENCE, {"pseudonym": pseudonym}).first()


def hris_profile(session: Session, pseudonym: str) -> sa.Row[*tuple[Any, ...]] | None:
    """What the HRIS told us (``role_family``, ``country``, ``language``), or None."""
    return session.connection().execute(_HRIS, {"pseudonym": pseudonym}).first()


def preference_for_update(session: Session, pseudonym: str) -> Preference:
    """The person's preference row as an entity to change (a new one when there is none)."""
    return session.get(Preference, pseudonym) or Preference(pseudonym=pseudonym)


def hris_profile_for_update(session: Session, pseudonym: str) -> HrisProfile:
    """The person's HRIS profile as an entity to change (a new one when there is none)."""
    return session.get(HrisProfile, pseudonym) or HrisProfile(pseudonym=pseudonym)


def needs(session: Session, pseudonym: str) -> Sequence[sa.Row[*tuple[Any, ...]]]:
    """The person's weekly needs (``iso_week``, ``needs``), newest week first."""
    return session.connection().execute(_NEEDS, {"pseudonym": pseudonym}).all()


def put_needs(session: Session, row: NeedSignal) -> None:
    session.merge(row)
    session.flush()
    kept = [n.iso_week for n in needs(session, row.pseudonym)[:NEED_WEEKS_KEPT]]
    session.exec(  # type: ignore[call-overload]
        delete(NeedSignal).where(col(NeedSignal.pseudonym) == row.pseudonym, col(NeedSignal.iso_week).not_in(kept))
    )


def interactions(session: Session, pseudonym: str) -> Sequence[sa.Row[*tuple[Any, ...]]]:
    """The person's interactions (``id``, ``resource_id``, ``kind``, ``at``), newest first, at
    most the retained number."""
    return session.connection().execute(_INTERACTIONS, {"pseudonym": pseudonym}).all()


def add_interaction(session: Session, pseudonym: str, resource_id: str, kind: str, at: datetime) -> None:
    session.add(Interaction(pseudonym=pseudonym, resource_id=resource_id, kind=kind, at=at))
    session.flush()
    keep = interactions(session, pseudonym)
    if len(keep) >= INTERACTIONS_KEPT:
        oldest = keep[-1]
        session.exec(  # type: ignore[call-overload]
            delete(Interaction).where(col(Interaction.pseudonym) == pseudonym, col(Interaction.id) < oldest.id)
        )


def delete_of(session: Session, pseudonym: str) -> int:
    """Remove every personalisation row of one person; returns how many."""
    removed = 0
    for table in (Preference, NeedSignal, HrisProfile, Interaction):
        result = session.exec(delete(table).where(col(table.pseudonym) == pseudonym))  # type: ignore[call-overload]
        removed += result.rowcount or 0
    return removed
