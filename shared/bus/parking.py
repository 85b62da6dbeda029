"""Parked outbox rows: messages JetStream would not take after ``max_attempts`` tries.

A row that never gets a PubAck (a subject the service may not publish to, a message the stream
refuses) would otherwise hold up every flush behind it. After its attempts are used up the relay
moves it, in one transaction, from ``outbox`` to ``outbox_dead``; the rest of the outbox keeps
flowing. Attempts are only counted against a row when the broker was demonstrably taking other
messages at the time (or refused this one explicitly), so an outage of NATS or JetStream parks
nothing. Parked rows show in ``kinwell_outbox_parked{service}``, in ``/readyz``'s ``outbox``
detail, and in ``kinwell outbox list``; ``kinwell outbox replay`` puts them back at the end of the
outbox once the cause is fixed (their message ids are kept, so JetStream still de-duplicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import Column, LargeBinary, delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from shared.telemetry import REGISTRY

OUTBOX_PARKED = Gauge(
    "kinwell_outbox_parked", "Outbox rows parked after their publish attempts ran out", ["service"], registry=REGISTRY
)


class ParkedOutboxMessage(SQLModel, table=True):
    """An outbox row moved aside after ``attempts`` failed publishes (``reason``: an error type)."""

    __tablename__ = "outbox_dead"

    seq: int | None = Field(default=None, primary_key=True)
    msg_id: str = Field(max_length=100, unique=True)
    subject: str = Field(max_length=255)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: str = Field(default="{}")
    created_at: datetime
    attempts: int
    parked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    reason: str = Field(max_length=64)


_DEAD: Any = ParkedOutboxMessage.__table__  # type: ignore[attr-defined]


def _outbox() -> Any:
    from shared.bus.outbox import OutboxMessage

    return OutboxMessage.__table__  # type: ignore[attr-defined]


def park_exhausted(engine: Engine, msg_ids: Sequence[str], max_attempts: int, reason: str) -> list[str]:
    """Move the rows among ``msg_ids`` whose attempts reached ``max_attempts``; returns their ids."""
    outbox = _outbox()
    with engine.begin() as conn:
        rows = conn.execute(
            select(outbox).where(outbox.c.msg_id.in_(list(msg_ids)), outbox.c.attempts >= max_attempts)
        ).all()
        if not rows:
            return []
        now = datetime.now(UTC)
        conn.execute(
            insert(_DEAD),
            [
                {"msg_id": r.msg_id, "subject": r.subject, "payload": r.payload, "headers": r.headers,
                 "created_at": r.created_at, "attempts": r.attempts, "parked_at": now, "reason": reason[:64]}
                for r in rows
            ],
        )  # fmt: skip
        ids = [r.msg_id for r in rows]
        conn.execute(delete(outbox).where(outbox.c.msg_id.in_(ids)))
    return ids


def parked_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(_DEAD)).scalar_one())


def list_parked(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Parked rows, oldest first, without their payloads (operators see what, not whom)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_DEAD.c.seq, _DEAD.c.msg_id, _DEAD.c.subject, _DEAD.c.attempts, _DEAD.c.created_at,
                   _DEAD.c.parked_at, _DEAD.c.reason).order_by(_DEAD.c.seq).limit(limit)
        ).all()  # fmt: skip
    return [dict(r._mapping) for r in rows]


def replay(engine: Engine, seqs: Sequence[int] | None = None) -> int:
    """Put parked rows (all, or those with these ``seqs``) back at the end of the outbox with
    fresh attempts; the running service's relay publishes them. Returns how many moved."""
    outbox = _outbox()
    query = select(_DEAD).order_by(_DEAD.c.seq)
    if seqs is not None:
        query = query.where(_DEAD.c.seq.in_(list(seqs)))
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        if not rows:
            return 0
        conn.execute(
            insert(outbox),
            [
                {"msg_id": r.msg_id, "subject": r.subject, "payload": r.payload, "headers": r.headers,
                 "created_at": r.created_at, "attempts": 0}
                for r in rows
            ],
        )  # fmt: skip
        conn.execute(delete(_DEAD).where(_DEAD.c.seq.in_([r.seq for r in rows])))
    return len(rows)
