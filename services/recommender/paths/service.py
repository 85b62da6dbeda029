"""Adaptive learning paths.

A path is an ordered list of modules, each pointing at a catalogue resource and naming the
modules it requires. The next step is the first module not yet done whose prerequisites are
completed; when the person's latest feedback on the path said the last module was too hard or
not helpful, a module that names a gentler resource offers that one instead. A module whose
resource was removed from the catalogue is passed over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlmodel import Session

from services.recommender.catalogue.entry import Entry
from services.recommender.catalogue.service import STARTER
from services.recommender.columns import as_utc, utcnow
from services.recommender.paths import repository as repo
from services.recommender.paths.models import PathProgress
from services.recommender.paths.schemas import ModuleRead, NextStep, PathRead, ProgressCreate
from shared.errors import Conflict, NotFound, Unprocessable


@dataclass(frozen=True)
class Module:
    id: str
    resource: str
    requires: tuple[str, ...]
    gentler: str | None


@dataclass(frozen=True)
class Path:
    id: str
    topic: str
    titles: dict[str, str]
    modules: tuple[Module, ...]


@cache
def paths() -> tuple[Path, ...]:
    document = json.loads(STARTER.read_text(encoding="utf-8"))
    return tuple(
        Path(
            id=p["id"],
            topic=p["topic"],
            titles=p["titles"],
            modules=tuple(Module(m["id"], m["resource"], tuple(m["requires"]), m["gentler"]) for m in p["modules"]),
        )
        for p in document["paths"]
    )


def _title(entry: Entry | None, lang: str) -> str:
    if entry is None:
        return ""
    version = entry.versions.get(lang) or entry.versions.get("en") or next(iter(entry.versions.values()))
    return str(version["title"])


def view(path: Path, progress: Sequence[PathProgress], catalogue: dict[str, Entry], lang: str) -> PathRead:
    done = {p.module_id: p.status for p in progress if p.path_id == path.id}
    completed = {m for m, status in done.items() if status == "completed"}
    latest = max((p for p in progress if p.path_id == path.id), key=lambda p: as_utc(p.at), default=None)
    struggled = latest is not None and latest.feedback in ("too_hard", "not_helpful")
    modules, next_step = [], None
    for module in path.modules:
        ready = set(module.requires) <= completed
        status = done.get(module.id) or ("available" if ready else "locked")
        modules.append(
            ModuleRead(
                id=module.id,
                resource_id=module.resource,
                title=_title(catalogue.get(module.resource), lang),
                requires=list(module.requires),
                status=status,  # type: ignore[arg-type]
            )
        )
        if next_step is None and status == "available" and module.resource in catalogue:
            gentle = struggled and module.gentler is not None and module.gentler in catalogue
            resource = module.gentler if gentle and module.gentler else module.resource
            next_step = NextStep(
                module_id=module.id, resource_id=resource, title=_title(catalogue[resource], lang), gentler=gentle
            )
    return PathRead(
        id=path.id,
        topic=path.topic,
        title=path.titles.get(lang) or path.titles["en"],
        modules=modules,
        next=next_step,
        completed=len(completed),
        total=len(path.modules),
    )


def find(path_id: str) -> Path:
    for path in paths():
        if path.id == path_id:
            return path
    raise NotFound("No such learning path.")


def record(session: Session, pseudonym: str, path_id: str, body: ProgressCreate) -> None:
    path = find(path_id)
    module = next((m for m in path.modules if m.id == body.module_id), None)
    if module is None:
        raise Unprocessable("This path has no such module.")
    completed = {
        p.module_id for p in repo.progress_of(session, pseudonym) if p.path_id == path_id and p.status == "completed"
    }
    if not set(module.requires) <= completed:
        raise Conflict("Complete the modules this one requires first.", requires=list(module.requires))
    repo.put(
        session,
        PathProgress(
            pseudonym=pseudonym,
            path_id=path_id,
            module_id=module.id,
            status=body.status,
            feedback=body.feedback,
            at=utcnow(),
        ),
    )


def export_of(session: Session, pseudonym: str) -> list[dict[str, Any]]:
    return [
        {
            "path_id": p.path_id,
            "module_id": p.module_id,
            "status": p.status,
            "feedback": p.feedback,
            "at": as_utc(p.at).isoformat(),
        }
        for p in repo.progress_of(session, pseudonym)
    ]
