"""Bulk import of an HRIS snapshot: org units and employees from a JSON or JSON-lines file.

Formats (see docs/integrations.md):

* JSON lines (``.jsonl``/``.ndjson``, streamed, any size): one Kinwell HRIS event per line, e.g.
  ``{"type": "org_unit.created", "org_unit": {...}}`` or ``{"type": "employee.created", ...}``;
* JSON (read whole, up to ``MAX_JSON_BYTES``): a list of such events, ``{"events": [...]}``, or
  ``{"org_units": [<OrgUnit>...], "employees": [<Employee>...]}`` (org units are yielded first).

List parent units before their children. Errors name the line or item number, never its content.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from shared.hris.schema import HRIS_EVENT, Employee, EmployeeCreated, OrgUnit, OrgUnitCreated

MAX_JSON_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_SIZE = 500


class SnapshotError(ValueError):
    """A snapshot record is not valid; ``position`` is its line (JSON lines) or item (JSON) number."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"record {position}: {reason}")
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class Progress:
    records: int
    bytes_read: int
    total_bytes: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.bytes_read / self.total_bytes) if self.total_bytes else 1.0


@dataclass(frozen=True)
class ImportResult:
    records: int
    batches: int


ProgressFn = Callable[[Progress], None]


def _event(raw: Any, position: int) -> Any:
    try:
        return HRIS_EVENT.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise SnapshotError(position, f"{first.get('type', 'invalid')} at {where or 'record'}") from None


def _lines(path: Path, total: int, progress: ProgressFn | None) -> Iterator[tuple[Any, int]]:
    read = count = 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            read += len(line)
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except (ValueError, RecursionError):
                raise SnapshotError(number, "not valid JSON") from None
            count += 1
            yield _event(raw, number), count
            if progress is not None and count % 1000 == 0:
                progress(Progress(count, read, total))


def _document(path: Path, total: int) -> Iterator[Any]:
    if total > MAX_JSON_BYTES:
        raise SnapshotError(0, f"JSON snapshots are limited to {MAX_JSON_BYTES} bytes; use JSON lines")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        raise SnapshotError(0, "not valid JSON") from None
    yield from iter_document(doc)


def iter_document(doc: Any) -> Iterator[Any]:
    """The events of a decoded snapshot document (a list of events, ``{"events": [...]}`` or
    ``{"org_units": [...], "employees": [...]}``); SnapshotError on the first bad record."""
    if isinstance(doc, dict) and ("org_units" in doc or "employees" in doc):
        if set(doc) - {"org_units", "employees"}:
            raise SnapshotError(0, "unknown top-level key")
        position = 0
        units, employees = doc.get("org_units") or [], doc.get("employees") or []
        if not isinstance(units, list) or not isinstance(employees, list):
            raise SnapshotError(0, "org_units and employees must be lists")
        for unit in units:
            position += 1
            try:
                yield OrgUnitCreated(type="org_unit.created", org_unit=OrgUnit.model_validate(unit))
            except ValidationError:
                raise SnapshotError(position, "invalid org unit") from None
        for employee in employees:
            position += 1
            try:
                yield EmployeeCreated(type="employee.created", employee=Employee.model_validate(employee))
            except ValidationError:
                raise SnapshotError(position, "invalid employee") from None
        return
    items = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise SnapshotError(0, "expected a list of events, {'events': [...]} or {'org_units', 'employees'}")
    for position, raw in enumerate(items, start=1):
        yield _event(raw, position)


def iter_snapshot(
    path: Path | str, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressFn | None = None
) -> Iterator[list[Any]]:
    """Batches of Kinwell HRIS events from a snapshot file; SnapshotError on the first bad record."""
    path = Path(path)
    total = path.stat().st_size
    batch: list[Any] = []
    count = 0
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        source: Iterator[Any] = (event for event, _ in _lines(path, total, progress))
    else:
        source = _document(path, total)
    for event in source:
        batch.append(event)
        count += 1
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    if progress is not None:
        progress(Progress(count, total, total))


def import_snapshot(
    path: Path | str,
    handle_batch: Callable[[list[Any]], None],
    progress: ProgressFn | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportResult:
    """Feed every batch of a snapshot to ``handle_batch`` (one transaction per batch, say)."""
    records = batches = 0
    for batch in iter_snapshot(path, batch_size=batch_size, progress=progress):
        handle_batch(batch)
        records += len(batch)
        batches += 1
    return ImportResult(records, batches)


class ProgressBar:
    """A one-line text progress bar for the CLI: ``[#########-----------]  45%  12,000 records``."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, progress: Progress) -> None:
        filled = round(progress.fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {progress.fraction * 100:5.1f}%  {progress.records:,} records")
        if progress.fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()
