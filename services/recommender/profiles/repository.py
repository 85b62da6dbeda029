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

# Core statements, built once (compiled once, then served from SQLAlchemy's statement cache): the
# needs and interactions are read on every recommendation as well as by the profile and export.
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


def preference(session: Session, pseudonym: str) -> Preference | None:
    return session.get(Preference, pseudonym)


def hris_profile(session: Session, pseudonym: str) -> HrisProfile | None:
    return session.get(HrisProfile, pseudonym)


def needs(session: Session, pseudonym: str) -> Sequence[sa.Row[Any]]:
    """The person's weekly needs (``iso_week``, ``needs``), newest week first."""
    return session.connection().execute(_NEEDS, {"pseudonym": pseudonym}).all()


def put_needs(session: Session, row: NeedSignal) -> None:
    session.merge(row)
    session.flush()
    kept = [n.iso_week for n in needs(session, row.pseudonym)[:NEED_WEEKS_KEPT]]
    session.exec(  # type: ignore[call-overload]
        delete(NeedSignal).where(col(NeedSignal.pseudonym) == row.pseudonym, col(NeedSignal.iso_week).not_in(kept))
    )


def interactions(session: Session, pseudonym: str) -> Sequence[sa.Row[Any]]:
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
