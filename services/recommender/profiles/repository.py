"""Every query on the personalisation tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import String, bindparam
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


@dataclass(frozen=True)
class RankingRows:
    """What ranking reads of one person: preference and HRIS columns (None where there is no
    row), needs newest week first, interactions (resource id, kind) newest first."""

    language: str | None
    topics: list[str] | None
    formats: list[str] | None
    minutes_available: int | None
    hris_language: str | None
    country: str | None
    role_family: str | None
    needs_by_week: list[list[str]]
    interactions: list[tuple[str, str]]


@cache
def _ranking_stmts() -> tuple[Any, Any, Any]:
    """Three Core statements (cached, compiled once) instead of four ORM loads: the person's
    preference and HRIS profile are one row of two outer joins on the pseudonym."""
    pref, hris = Preference.__table__, HrisProfile.__table__  # type: ignore[attr-defined]
    need, inter = NeedSignal.__table__, Interaction.__table__  # type: ignore[attr-defined]
    me = sa.select(bindparam("pseudonym", type_=String).label("pseudonym")).subquery("me")
    person = sa.select(
        pref.c.language,
        pref.c.topics,
        pref.c.formats,
        pref.c.minutes_available,
        hris.c.language,
        hris.c.country,
        hris.c.role_family,
    ).select_from(
        me.outerjoin(pref, pref.c.pseudonym == me.c.pseudonym).outerjoin(hris, hris.c.pseudonym == me.c.pseudonym)
    )
    needs_ = sa.select(need.c.needs).where(need.c.pseudonym == bindparam("pseudonym")).order_by(need.c.iso_week.desc())
    interactions_ = (
        sa.select(inter.c.resource_id, inter.c.kind)
        .where(inter.c.pseudonym == bindparam("pseudonym"))
        .order_by(inter.c.at.desc(), inter.c.id.desc())
        .limit(INTERACTIONS_KEPT)
    )
    return person, needs_, interactions_


def ranking_rows(session: Session, pseudonym: str) -> RankingRows:
    """The rows ranking reads of one person (the same as ``preference``, ``hris_profile``,
    ``needs`` and ``interactions``; Core, as this runs on every recommendation)."""
    person, needs_, interactions_ = _ranking_stmts()
    conn, values = session.connection(), {"pseudonym": pseudonym}
    language, topics, formats, minutes, hris_language, country, role_family = conn.execute(person, values).one()
    return RankingRows(
        language,
        topics,
        formats,
        minutes,
        hris_language,
        country,
        role_family,
        needs_by_week=[r[0] for r in conn.execute(needs_, values)],
        interactions=[(r[0], r[1]) for r in conn.execute(interactions_, values)],
    )
