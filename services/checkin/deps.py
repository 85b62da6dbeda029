"""The check-in service's long-lived parts, built once in ``create_app`` (``app.state.checkin``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.checkin.checkins.writer import GroupCommitWriter
from services.checkin.config import CheckinSettings
from shared.datakeys import DataKeyStore
from shared.eventkeys import EventKeyring


@dataclass
class CheckinContext:
    settings: CheckinSettings
    keys: DataKeyStore
    writer: GroupCommitWriter
    event_keys: EventKeyring
    started: bool = False  # background work of on_start is running

    @property
    def period_key(self) -> bytes:
        return self.settings.platform.secret("period_key")


def _context(request: Request) -> CheckinContext:
    ctx: CheckinContext = request.app.state.checkin
    return ctx


async def _async_context(request: Request) -> CheckinContext:
    return _context(request)


Ctx = Annotated[CheckinContext, Depends(_async_context)]
