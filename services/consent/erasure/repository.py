"""Every query of erasure requests.

An acknowledgement first writes its request row, so the last of several concurrent
acknowledgements sees the others and completes the request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    update,
)
from sqlmodel import Session, col, select

from services.consent.erasure.models import ErasureAck, ErasureRequest


def open_erasure_for(session: Session, owner_hash: str) -> ErasureRequest | None:
    stmt = select(ErasureRequest).where(
        ErasureRequest.owner_hash == owner_hash, col(ErasureRequest.completed_at).is_(None)
    )
    return session.exec(stmt).first()


def erasures_of(session: Session, owner_hash: str) -> list[ErasureRequest]:
    stmt = (
        select(ErasureRequest).where(ErasureRequest.owner_hash == owner_hash).order_by(col(ErasureRequest.requested_at))
    )
    return list(session.exec(stmt))


def get_erasure(session: Session, request_id: str) -> ErasureRequest | None:
    return session.get(ErasureRequest, request_id)


def lock_erasure(session: Session, request_id: str) -> ErasureRequest | None:
    """Lock the request by writing it first, so concurrent acknowledgements see each other."""
    session.exec(
        update(ErasureRequest)
        .where(col(ErasureRequest.id) == request_id)
        .values(attempts=ErasureRequest.attempts)
        .execution_options(synchronize_session=False)
    )
    return session.exec(select(ErasureRequest).where(ErasureRequest.id == request_id)).first()


def acks_of(session: Session, request_id: str) -> list[ErasureAck]:
    stmt = select(ErasureAck).where(ErasureAck.request_id == request_id).order_by(col(ErasureAck.service))
    return list(session.exec(stmt))


def stale_erasures(session: Session, sent_before: datetime, limit: int = 100) -> Sequence[ErasureRequest]:
    """Open requests last published before ``sent_before`` (skipping rows another replica holds)."""
    stmt = (
        select(ErasureRequest)
        .where(col(ErasureRequest.completed_at).is_(None), col(ErasureRequest.last_sent_at) < sent_before)
        .order_by(col(ErasureRequest.last_sent_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.exec(stmt).all()


def add_request(session: Session, request: ErasureRequest, services: Iterable[str]) -> None:
    """A new request, with a pending acknowledgement for each of ``services``."""
    session.add(request)
    session.flush()  # the acks reference the request
    session.add_all([ErasureAck(request_id=request.id, service=svc) for svc in services])


def save(session: Session, row: ErasureRequest | ErasureAck) -> None:
    session.add(row)  # flushed with the transaction (or by the next query's autoflush)
