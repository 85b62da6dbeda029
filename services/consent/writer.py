"""Consent changes go through the shared group-commit writer (``shared.db_writer.BatchWriter``).

Every grant and withdrawal is a write transaction (consent row, history row with its signed
receipt, the KV put every gate watches, the event). On SQLite writers serialise on one lock, so a
session per request mostly queues (busy-handler sleeps of 1-100 ms) and holds a thread and a
pooled connection while it waits. Here a request hands its unit of work (a function of a
session: ``service.grant`` or ``service.withdraw``) to the writer, which runs whatever has queued
up in one transaction. What the shared writer adds for consent:

* ``stored_timeout``: each request is answered only once its batch has committed **and** the
  batch's KV puts are stored in the bucket (or superseded by newer versions), so a withdrawal's
  200 means the bucket already says ``withdrawn`` and every gate denies from then on, whatever the
  timing of the grant before it. When the puts are not stored in time (NATS unreachable), the
  committed change is answered 503 ``change-pending``: it takes effect once the relay can publish
  it, and reading one's consents shows it.
* ``_session``: on SQLite each transaction holds the service's in-process write lock, so changes
  made outside the writer (erasure) queue on it without busy-waiting, and it is marked
  ``SERIALISED`` (``BEGIN IMMEDIATE``: every read in a unit is under the write lock). On PostgreSQL
  the same code runs with the row locks of ``repository.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.consent.deps import SERIALISED, ConsentContext
from shared.app import Runtime
from shared.db_writer import BatchWriter
from shared.errors import ServiceUnavailable

T = TypeVar("T")
STORED_TIMEOUT_S = 5.0
Unit = Callable[[Session], Any]


class ConsentWriter(BatchWriter[Unit, Any]):
    """Runs consent units of work in batched transactions (the module docstring)."""

    log = logging.getLogger("kinwell.consent.writer")

    def __init__(self, engine: Engine, ctx: ConsentContext, *, max_batch: int = 64) -> None:
        super().__init__(engine, name="consent-writer", max_batch=max_batch, stored_timeout=STORED_TIMEOUT_S)
        self.ctx = ctx

    async def run(self, unit: Callable[[Session], T]) -> T:
        """Run ``unit(session)`` in the next batch; returns its result once committed and published."""
        result: T = await self.write(unit)
        return result

    def _apply(self, session: Session, items: list[Unit]) -> list[Any]:
        return [unit(session) for unit in items]

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self.ctx.write_locked(self.engine), super()._session() as session:
            self.ctx.mark_write_lock_held(session)
            if self.sqlite:
                session.info[SERIALISED] = True  # BEGIN IMMEDIATE: every read below is under the write lock
            yield session

    def _unpublished(self) -> BaseException:
        return ServiceUnavailable(
            "The change is recorded and takes effect as soon as it reaches every service; "
            "read your consents to see it.",
            code="change-pending",
        )


def writer_of(rt: Runtime, ctx: ConsentContext) -> ConsentWriter:
    """The service's writer, created on first use (its relay may not have started yet: rows wait)."""
    writer = ctx.writer_slot.writer
    if writer is None:
        writer = ConsentWriter(rt.engine, ctx, max_batch=ctx.settings.writer_max_batch)
        ctx.writer_slot.writer = writer
    return writer


async def get_writer(request: Request) -> ConsentWriter:
    return writer_of(request.app.state.runtime, request.app.state.consent)


def writer_stopper(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    """Lifespan hook: write what is queued, then stop."""

    async def stop(rt: Runtime) -> None:
        writer, ctx.writer_slot.writer = ctx.writer_slot.writer, None
        if writer is not None:
            await writer.stop()

    return stop


WriterDep = Annotated[ConsentWriter, Depends(get_writer)]
