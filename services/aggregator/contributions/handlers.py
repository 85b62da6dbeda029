"""``contribution.>`` -> the contributions service."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from sqlmodel import Session

from services.aggregator.contributions import service
from shared.app import ConsumerBinding
from shared.events.contribution import ContributionRecorded, ContributionRetracted

ContributionEvent = Annotated[ContributionRecorded | ContributionRetracted, Field(discriminator="type")]


def handle(session: Session, event: Any) -> None:
    if isinstance(event, ContributionRecorded):
        service.record(session, event)
    else:
        service.retract(session, event)


def binding() -> ConsumerBinding:
    return ConsumerBinding("contribution.>", TypeAdapter(ContributionEvent), handle)
