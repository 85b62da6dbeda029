"""Pieces every service wires the same way: erasure acknowledgement and its consumer binding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session

from shared.app import ConsumerBinding
from shared.bus.outbox import stage
from shared.events.subject import ErasureRequested, SubjectErased

EraseFn = Callable[[Session, str], int]


def erasure_binding(service: Any, erase: EraseFn) -> ConsumerBinding:
    """Consume ``subject.erasure.requested.v1``: erase, then acknowledge in the same transaction."""

    def handle(session: Session, event: ErasureRequested) -> None:
        records = erase(session, event.pseudonym)
        stage(session, SubjectErased(request_id=event.request_id, service=service, records=records))

    return ConsumerBinding("subject.erasure.>", TypeAdapter(ErasureRequested), handle)
