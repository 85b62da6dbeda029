"""Every service's erasure acknowledgement -> the erasure request it completes."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import TypeAdapter
from sqlmodel import Session

from services.consent.deps import ConsentContext
from services.consent.erasure import service as erasure
from shared.app import ConsumerBinding, Runtime
from shared.events.subject import SubjectErased
from shared.topology import SUBJECT_REQUEST_RESPONDERS

_ACK = TypeAdapter(SubjectErased)


def _on_erased(via: str, ctx: ConsentContext) -> Callable[[Session, SubjectErased], None]:
    def handle(session: Session, event: SubjectErased) -> None:
        erasure.record_ack(session, event, via, ctx)

    return handle


def bindings(rt: Runtime, ctx: ConsentContext) -> list[ConsumerBinding]:
    """One consumer per service stream (``<svc>.erasure.>``): each may only ack for itself."""
    return [ConsumerBinding(f"{svc}.erasure.>", _ACK, _on_erased(svc, ctx)) for svc in SUBJECT_REQUEST_RESPONDERS]
