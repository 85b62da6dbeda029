"""Group commit for check-in ingest: the check-ins of many requests in one durable transaction.

Requests do their CPU work (validation, scoring, screening, encryption, event building) on the
event loop and hand the prepared check-in here. The shared ``BatchWriter`` takes whatever has
queued up and runs ``service.store_checkin`` for each in one session and one transaction (the
same function a request's own session could run: it reads and writes through the repository
and stages its events with ``shared.bus.stage``), commits, and only then answers each request:
a 2xx is never sent before its data is durable.

Why batch: on SQLite every writer serialises on one lock, so sessions per request mostly wait
(busy timeouts) and pay one fsync each; measured at open-loop load (docs/benchmarks.md), at
1,000 check-ins/s the batch's p99 is 3-4x lower than one commit per request. On PostgreSQL the same
code runs with ``SELECT ... FOR UPDATE`` on the trend rows it rewrites.

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

from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.checkin.checkins import service
from services.checkin.checkins.service import CheckinWrite, WriteResult
from shared.consent_gate import ConsentGate
from shared.db_writer import BatchWriter
from shared.errors import ConsentRequired, ServiceUnavailable


class GroupCommitWriter(BatchWriter[CheckinWrite, WriteResult]):
    """Stores check-ins of many requests per transaction."""

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
            item.events = [event for event in item.events if event.consent_current(gate)]
            if item.contributions and not gate.allowed(pseudonym, "aggregate_insights"):
                item.contributions = []
            refusals.append(None)
        return refusals

    def _apply(self, session: Session, items: list[CheckinWrite]) -> list[WriteResult]:
        # Each in the context it was prepared in, so that its events carry its request's trace.
        # No autoflush: the batch's rows go out in one flush at commit, each table's as one
        # multi-row statement, instead of one flush per item before its reads (~10x the CPU);
        # an item's reads never need an earlier item's pending rows (the trend row is found
        # in the session's identity map).
        with session.no_autoflush:
            return [item.context.run(service.store_checkin, session, item, self.trend_weeks) for item in items]
