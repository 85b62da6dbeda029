"""Versioned event contracts: one discriminated union, JSON Schema exported to docs/events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from shared.events.base import Event
from shared.events.consent import ConsentChanged, Purpose
from shared.events.subject import ErasureRequested, SubjectDataReply, SubjectDataRequest, SubjectErased

AnyEvent = Annotated[
    ConsentChanged | ErasureRequested | SubjectErased,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["type"].default: cls for cls in (ConsentChanged, ErasureRequested, SubjectErased)
}


def parse_event(data: bytes | str) -> Event:
    """Validate a message body into its contract; raises pydantic.ValidationError."""
    event: Event = EVENT_ADAPTER.validate_json(data)
    return event


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every contract, keyed by event type."""
    return {name: cls.model_json_schema() for name, cls in sorted(EVENT_TYPES.items())}


def export_json_schemas(folder: Path) -> list[Path]:
    """Write one ``<type>.json`` per contract into ``folder`` (docs/events/)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


__all__ = [
    "AnyEvent",
    "ConsentChanged",
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
