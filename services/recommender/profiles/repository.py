"""Every query on the personalisation tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, delete, select

from services.recommender.profiles.models import HrisProfile, Interaction, NeedSignal, Preference

NEED_WEEKS_KEPT = 8
INTERACTIONS_KEPT = 500


def preference(session: Session, pseudonym: str) -> Preference | None:
    return session.get(Preference, pseudonym)


def hris_profile(session: Session, pseudonym: str) -> HrisProfile | None:
    return session.get(HrisProfile, pseudonym)


def needs(session: Session, pseudonym: str) -> Sequence[NeedSignal]:
    """Newest week first."""
    query = select(NeedSignal).where(NeedSignal.pseudonym == pseudonym).order_by(col(NeedSignal.iso_week).desc())
    return session.exec(query).all()


def put_needs(session: Session, row: NeedSignal) -> None:
    session.merge(row)
    session.flush()
    kept = [n.iso_week for n in needs(session, row.pseudonym)[:NEED_WEEKS_KEPT]]
    session.exec(  # type: ignore[call-overload]
        delete(NeedSignal).where(col(NeedSignal.pseudonym) == row.pseudonym, col(NeedSignal.iso_week).not_in(kept))
    )


def interactions(session: Session, pseudonym: str) -> Sequence[Interaction]:
    """Newest first, at most the retained number."""
    query = (
        select(Interaction)
        .where(Interaction.pseudonym == pseudonym)
        .order_by(col(Interaction.at).desc(), col(Interaction.id).desc())
        .limit(INTERACTIONS_KEPT)
    )
    return session.exec(query).all()


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
