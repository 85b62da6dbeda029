"""Catalogue rules: the starter catalogue, admin changes, and the cached view ranking reads.

Ranking reads the whole catalogue on every request, so each process keeps an immutable snapshot
and reloads it only when the ``catalogue_state`` version moves (every write bumps it in the same
transaction), which keeps replicas consistent without a message bus round trip.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from services.recommender.catalogue import repository as repo
from services.recommender.catalogue.entry import Entry
from services.recommender.catalogue.index import Index
from services.recommender.catalogue.models import Resource
from services.recommender.catalogue.schemas import (
    ResourceCreate,
    ResourceRead,
    ResourceUpdate,
)
from services.recommender.columns import utcnow
from shared.errors import Conflict, NotFound

STARTER = Path(__file__).resolve().parent.parent / "data" / "catalogue.json"


def _entry(row: Resource) -> Entry:
    return Entry(
        id=row.id,
        kind=row.kind,
        format=row.format,
        topics=tuple(row.topics),
        duration_minutes=row.duration_minutes,
        countries=frozenset(row.countries),
        role_families=frozenset(row.role_families),
        versions=dict(row.versions),
    )


def read_model(entry: Entry) -> ResourceRead:
    return ResourceRead(
        id=entry.id,
        kind=entry.kind,  # type: ignore[arg-type]
        format=entry.format,  # type: ignore[arg-type]
        topics=list(entry.topics),  # type: ignore[arg-type]
        duration_minutes=entry.duration_minutes,
        countries=sorted(entry.countries),
        role_families=sorted(entry.role_families),
        versions=entry.versions,  # type: ignore[arg-type]
        professional_help=entry.professional_help,
    )


@dataclass(frozen=True)
class Snapshot:
    """The catalogue at one version: entries in id order, and by id."""

    entries: tuple[Entry, ...]
    by_id: dict[str, Entry]
    index: Index


class CatalogueCache:
    """The catalogue as of its current version, reloaded when a write (here or on another
    replica) moved it; one cheap primary-key read per request decides."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._snapshot = Snapshot((), {}, Index.build(()))

    def snapshot(self, session: Session) -> Snapshot:
        current = repo.version(session)
        if current != self._version:
            with self._lock:
                if current != self._version:
                    entries = tuple(_entry(row) for row in repo.all_resources(session))
                    self._snapshot = Snapshot(entries, {e.id: e for e in entries}, Index.build(entries))
                    self._version = current
        return self._snapshot

    def entries(self, session: Session) -> tuple[Entry, ...]:
        return self.snapshot(session).entries


def seed_starter(session: Session, path: Path = STARTER) -> int:
    """Load the starter catalogue into an empty catalogue; returns how many were added."""
    if repo.count(session):
        return 0
    document = json.loads(path.read_text(encoding="utf-8"))
    for item in document["resources"]:
        _store(session, ResourceCreate.model_validate(item))
    repo.bump_version(session)
    return len(document["resources"])


def _store(session: Session, body: ResourceCreate, row: Resource | None = None) -> Resource:
    data = body.model_dump(exclude={"id"})
    data["versions"] = {lang: v.model_dump(exclude_none=True) for lang, v in body.versions.items()}
    if row is None:
        row = Resource(id=body.id, updated_at=utcnow(), **data)
    for name, value in data.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    return row


def create(session: Session, body: ResourceCreate) -> ResourceRead:
    if repo.get(session, body.id) is not None:
        raise Conflict("A resource with this id exists; use PUT to change it.")
    row = _store(session, body)
    repo.bump_version(session)
    return read_model(_entry(row))


def replace(session: Session, resource_id: str, body: ResourceUpdate) -> ResourceRead:
    row = repo.get(session, resource_id)
    if row is None:
        raise NotFound("No such resource.")
    _store(session, ResourceCreate(id=resource_id, **body.model_dump()), row)
    repo.bump_version(session)
    return read_model(_entry(row))


def delete(session: Session, resource_id: str) -> None:
    row = repo.get(session, resource_id)
    if row is None:
        raise NotFound("No such resource.")
    session.delete(row)
    repo.bump_version(session)


def browse(entries: tuple[Entry, ...], *, lang: str | None, topic: str | None, format: str | None) -> list[Entry]:
    """Public listing filters (entries are in id order, which the cursor relies on)."""
    return [
        e
        for e in entries
        if (lang is None or lang in e.versions)
        and (topic is None or topic in e.topics)
        and (format is None or e.format == format)
    ]
