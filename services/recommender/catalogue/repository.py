"""Every query on the catalogue tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from services.recommender.catalogue.models import CatalogueState, Resource


def get(session: Session, resource_id: str) -> Resource | None:
    return session.get(Resource, resource_id)


def page(session: Session, *, after: str | None, limit: int) -> Sequence[Resource]:
    query = select(Resource).order_by(col(Resource.id)).limit(limit)
    if after is not None:
        query = query.where(col(Resource.id) > after)
    return session.exec(query).all()


def all_resources(session: Session) -> Sequence[Resource]:
    return session.exec(select(Resource).order_by(col(Resource.id))).all()


def count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Resource)).one())


_VERSION = select(CatalogueState.version).where(CatalogueState.id == 1)  # built once: read per request


def version(session: Session) -> int:
    """The catalogue's version (Core: read on every recommendation); 0 before the first write."""
    value = session.connection().execute(_VERSION).scalar()
    return int(value) if value is not None else 0


def bump_version(session: Session) -> int:
    """Lock the state row and move it on, so every replica's cached view reloads."""
    state = session.exec(select(CatalogueState).where(CatalogueState.id == 1).with_for_update()).first()
    if state is None:
        state = CatalogueState(id=1, version=0)
    state.version += 1
    session.add(state)
    return state.version
