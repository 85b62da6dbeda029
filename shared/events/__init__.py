"""Versioned event contracts: one discriminated union, JSON Schema exported to docs/events/.

Each producing service's contracts live in their own module here; every ``Event`` subclass defined
in a ``shared.events.*`` module joins the union automatically.
"""

from __future__ import annotations

import json
from functools import reduce
from operator import or_
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from shared.events import (  # noqa: F401 - registers contracts
    aggregator,
    checkin,
    consent,
    contribution,
    hris,
    recommender,
    subject,
)
from shared.events.base import Event
from shared.events.consent import ConsentChangedV2, Purpose
from shared.events.subject import ErasureRequested, SubjectDataReply, SubjectDataRequest, SubjectErased


def _contracts() -> list[type[Event]]:
    found: list[type[Event]] = []
    stack = list(Event.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("shared.events.") and "type" in cls.model_fields:
            found.append(cls)
    return sorted(found, key=lambda c: str(c.model_fields["type"].default))


CONTRACTS: list[type[Event]] = _contracts()
EVENT_TYPES: dict[str, type[Event]] = {str(c.model_fields["type"].default): c for c in CONTRACTS}
AnyEvent = Annotated[reduce(or_, CONTRACTS), Field(discriminator="type")]  # type: ignore[valid-type]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)  # type: ignore[arg-type]


def parse_event(data: bytes | str) -> Event:
    """Validate a message body into its contract; raises pydantic.ValidationError."""
    event: Event = EVENT_ADAPTER.validate_json(data)
    return event


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every contract, keyed by event type."""
    return {name: cls.model_json_schema() for name, cls in sorted(EVENT_TYPES.items())}


def export_json_schemas(folder: Path) -> list[Path]:
    """Write one ``<type>.json`` per contract into ``folder`` (docs/events/), removing stale ones."""
    folder.mkdir(parents=True, exist_ok=True)
    schemas = json_schemas()
    for old in folder.glob("*.json"):
        if old.stem not in schemas:
            old.unlink()
    written = []
    for name, schema in schemas.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


__all__ = [
    "CONTRACTS",
    "AnyEvent",
    "ConsentChangedV2",
    "ErasureRequested",
    "Event",
    "EVENT_TYPES",
    "Purpose",
    "SubjectDataReply",
    "SubjectDataRequest",
    "SubjectErased",
    "export_json_schemas",
    "json_schemas",
    "parse_event",
]
