"""The escalation service's long-lived parts (``app.state.escalation``) and who is calling."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from services.escalation.config import EscalationSettings
from shared.auth import Role
from shared.crypto import pseudonym
from shared.datakeys import DataKeyStore, MasterKeys
from shared.eventkeys import EventKeyring
from shared.subject import Subject, subject_with_role


@dataclass
class EscalationContext:
    settings: EscalationSettings
    keys: DataKeyStore
    event_keys: EventKeyring  # opens the sealed facts of checkin.escalation.flagged.v2
    runtime: Any = None  # shared.app.Runtime once started (bus for request/reply)

    @classmethod
    def from_settings(cls, settings: EscalationSettings) -> "EscalationContext":
        platform = settings.platform
        return cls(
            settings=settings,
            keys=DataKeyStore(MasterKeys.from_settings(platform)),
            event_keys=EventKeyring(platform.secret("event_key_kek")),
        )

    def pseudonym(self, sub: str) -> str:
        platform = self.settings.platform
        return pseudonym(platform.secret("pseudonym_key"), platform.tenant, sub)


def _context(request: Request) -> EscalationContext:
    ctx: EscalationContext = request.app.state.escalation
    return ctx


async def _async_context(request: Request) -> EscalationContext:
    return _context(request)


Ctx = Annotated[EscalationContext, Depends(_async_context)]
Counsellor = Annotated[Subject, Depends(subject_with_role(Role.counsellor))]
Employee = Annotated[Subject, Depends(subject_with_role(Role.employee))]
