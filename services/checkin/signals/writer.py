"""Group commit for signal batches: many requests' batches per durable transaction.

Each ``POST /v1/signals`` hands its prepared rows here and waits: the shared ``BatchWriter`` takes
every batch queued meanwhile (up to ``max_rows`` rows), upserts them through the repository in one
session, commits (one fsync shared by the group), and only then resolves each request, so a 200 is
never sent before its rows are durable. A failing group is retried batch by batch so that only the
failing request sees the error.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.checkin.signals import repository as repo
from shared.db_writer import BatchWriter

Rows = list[dict[str, Any]]


class SignalWriter(BatchWriter[Rows, None]):
    """Serialises signal batches into grouped transactions on one connection."""

    log = logging.getLogger("kinwell.checkin.signals")

    def __init__(self, engine: Engine, *, max_rows: int = 20_000, linger: float = 0.0) -> None:
        super().__init__(engine, name="signals-writer", max_batch=max_rows, linger=linger)

    async def write(self, item: Rows) -> None:
        """Store the rows durably; returns once their transaction has committed."""
        if item:
            await super().write(item)

    def _size(self, item: Rows) -> int:
        return len(item)

    def _apply(self, session: Session, items: list[Rows]) -> list[None]:
        for rows in items:
            repo.upsert_days(session, rows)
        return [None] * len(items)
