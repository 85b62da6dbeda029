"""``hris.org.>`` and ``hris.trigger.>`` -> the org service."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from sqlmodel import Session

from services.aggregator.org import service
from shared.app import ConsumerBinding
from shared.events.hris import ManagerScopeChanged, OrgUnitChanged, TriggerAnnounced

OrgEvent = Annotated[OrgUnitChanged | ManagerScopeChanged, Field(discriminator="type")]


def handle_org(session: Session, event: Any) -> None:
    if isinstance(event, OrgUnitChanged):
        service.on_unit_changed(session, event)
    else:
        service.on_manager_scope(session, event)


def bindings() -> list[ConsumerBinding]:
    return [
        ConsumerBinding("hris.org.>", TypeAdapter(OrgEvent), handle_org),
        ConsumerBinding("hris.trigger.>", TypeAdapter(TriggerAnnounced), service.on_trigger),
    ]
