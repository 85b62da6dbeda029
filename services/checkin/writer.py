"""Group commit for check-in ingest: one writer, many requests per durable transaction.

Requests do their CPU work (validation, scoring, screening, encryption, event building) on the
event loop and hand the finished rows to this writer. One thread with one connection takes
whatever has queued up, writes it in a single transaction (check-in rows, trend rows, outbox rows,
pending contributions), commits, and only then resolves each request's future: a 2xx is never
sent before its data is durable, as with ``SessionDep``. The queue, thread, connection,
transaction and retry machinery is ``shared.db_writer.BatchWriter``; this module is ``_apply``.

Why not a session per request: on SQLite every writer serialises on one lock, so a pool of
sessions mostly waits (busy timeouts, p99 in seconds) and pays one fsync per request. Here the
commit (``synchronous=FULL`` on SQLite: durable even on power loss) is shared by the batch. On
PostgreSQL the same code runs with ``SELECT ... FOR UPDATE`` on the trend rows it rewrites.

If a batch fails (e.g. a foreign-key error because an erasure destroyed a cached data key), each
item is retried alone so that only the failing request sees the error.

Consent is asked again when a batch is written (``_admit``), not only when a request arrives:
first a read barrier on the gate (``ConsentGate.current``: the projection has caught up with
everything the bucket held at that moment; the consent service answers a withdrawal only once
the bucket holds it), then, per item, ``checkin`` for the check-in itself (else 403),
each derived event's own rule (``consent_current``: the flag's purpose, or the employee's request
to talk) and ``aggregate_insights`` for the contributions, which are dropped when it is gone. So a
check-in posted after a withdrawal's 200 is refused whatever the timing, and nothing derived
under a withdrawn purpose is stored. No barrier (NATS unreachable, gate not synced): 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic_core import from_json, to_json
from sqlalchemy.engine import Connection, Engine

from services.checkin import repository as repo
from services.checkin.clock import iso_week
from services.checkin.models import CONTRIBUTIONS
from services.checkin.scoring import Scores
from shared.consent_gate import ConsentGate
from shared.contributions import repository as contributions
from shared.contributions.producer import Draft
from shared.datakeys import CiphertextInvalid, SubjectKey
from shared.db_writer import BatchWriter
from shared.errors import ConsentRequired, ServiceUnavailable
from shared.events.checkin import GatedEvent, Produced

KEEP_WEEKS = 8


@dataclass
class CheckinWrite:
    """A check-in ready to store: every field already sealed, every event already gated."""

    row: dict[str, Any]
    key: SubjectKey
    week: str
    week_start: date
    point: tuple[int, int]
    # Derived events (each with its outbox row), asked their consent again when written.
    outbox: list[tuple[GatedEvent | Produced, dict[str, Any]]] = field(default_factory=list)
    contributions: list[Draft] = field(default_factory=list)


@dataclass
class WriteResult:
    trend: list[tuple[str, int, int]]
    contributed: bool


def trend_context(pseudonym: str) -> tuple[str, str, str]:
    return ("checkin_trend", pseudonym, "trend")


def payload_context(row_id: str) -> tuple[str, str, str]:
    return ("checkin", row_id, "payload")


def rebuild_points(key: SubjectKey, rows: list[Any]) -> dict[str, tuple[int, int]]:
    """Latest (WHO-5 index, mood) per week from check-in rows, oldest first."""
    points: dict[str, tuple[int, int]] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        try:
            scores = Scores.from_json(from_json(key.open(row.payload, *payload_context(row.id)))["scores"])
        except CiphertextInvalid:
            continue
        points[row.iso_week] = (scores.who5_index, scores.mood)
    return points


def trend_window(points: dict[str, tuple[int, int]], current_start: date, weeks: int) -> list[tuple[str, int, int]]:
    first = iso_week(current_start - timedelta(weeks=weeks - 1))
    return [(w, p[0], p[1]) for w, p in sorted(points.items()) if w >= first]


class GroupCommitWriter(BatchWriter[CheckinWrite, WriteResult]):
    """Serialises check-in writes into batched transactions on one connection."""

    log = logging.getLogger("kinwell.checkin.writer")

    def __init__(
        self,
        engine: Engine,
        *,
        trend_weeks: int = 6,
        max_batch: int = 128,
        linger: float = 0.0,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(engine, name="checkin-writer", max_batch=max_batch, linger=linger, on_commit=on_commit)
        self.trend_weeks = trend_weeks
        self.gate: ConsentGate | None = None  # set when the service starts; every batch asks it

    async def _admit(self, items: list[CheckinWrite]) -> list[BaseException | None]:
        """Ask consent again, as of now (the module docstring)."""
        gate = self.gate
        if gate is None or not await gate.current():
            return [ServiceUnavailable("Consent state is not available yet; please retry.")] * len(items)
        refusals: list[BaseException | None] = []
        for item in items:
            pseudonym = item.key.pseudonym
            if not gate.allowed(pseudonym, "checkin"):
                refusals.append(ConsentRequired("checkin"))
                continue
            item.outbox = [(event, row) for event, row in item.outbox if event.consent_current(gate)]
            if item.contributions and not gate.allowed(pseudonym, "aggregate_insights"):
                item.contributions = []
            refusals.append(None)
        return refusals

    # --- executor thread -----------------------------------------------------------------------

    def _apply(self, conn: Connection, items: list[CheckinWrite]) -> list[WriteResult]:
        keys = {item.key.pseudonym: item.key for item in items}
        starts: dict[str, date] = {}
        for item in items:
            p = item.key.pseudonym
            starts[p] = min(starts.get(p, item.week_start), item.week_start)
        stored = repo.load_trends(conn, sorted(keys), lock=not self.sqlite)
        points = {p: self._points(conn, key, stored.get(p), starts[p]) for p, key in keys.items()}
        org_units: dict[tuple[str, date], str | None] = {}
        wanting = [i for i in items if i.contributions]
        for start in {item.week_start for item in wanting}:
            pseudonyms = [i.key.pseudonym for i in wanting if i.week_start == start]
            for p, unit in contributions.units_at(conn, CONTRIBUTIONS.tables, pseudonyms, start).items():
                org_units[(p, start)] = unit
        results, pending, outbox = [], [], []
        for item in items:
            p = item.key.pseudonym
            points[p][item.week] = item.point
            org_unit = org_units.get((p, item.week_start))
            if org_unit is not None:
                pending += CONTRIBUTIONS.rows(org_unit, item.week, item.contributions)
            outbox += [row for _, row in item.outbox]
            results.append(
                WriteResult(trend_window(points[p], item.week_start, self.trend_weeks), org_unit is not None)
            )
        repo.insert_checkins(conn, [item.row for item in items])
        now = max(item.row["created_at"] for item in items)
        trend_rows = []
        for p, key in keys.items():
            keep = dict(sorted(points[p].items())[-KEEP_WEEKS:])
            sealed = key.seal(to_json(keep), *trend_context(p))
            trend_rows.append({"pseudonym": p, "key_id": key.key_id, "trend": sealed, "updated_at": now})
        repo.save_trends(conn, trend_rows, existing=set(stored))
        repo.insert_outbox(conn, outbox)
        contributions.insert_pending(conn, CONTRIBUTIONS.tables, pending)
        return results

    def _points(
        self, conn: Connection, key: SubjectKey, stored: tuple[str, bytes] | None, current: date
    ) -> dict[str, tuple[int, int]]:
        if stored is not None and stored[0] == key.key_id:
            try:
                raw = from_json(key.open(stored[1], *trend_context(key.pseudonym)))
                return {week: (int(v[0]), int(v[1])) for week, v in raw.items()}
            except (CiphertextInvalid, ValueError, KeyError, TypeError, IndexError):
                pass  # unreadable cache: rebuild it from the check-ins themselves
        since = iso_week(current - timedelta(weeks=KEEP_WEEKS))
        return rebuild_points(key, repo.recent_checkins(conn, key.pseudonym, since))
