"""Consent changes as the consent service publishes them: sealed under the subject's event key,
created if it is missing (``shared.eventkeys``), for harnesses that stand in for consent."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.datakeys import SubjectKey
from shared.eventkeys import EventKeyring
from shared.events.consent import ConsentChangedV2, ConsentState, Purpose


async def consent_changed(
    bus: Any, kek: bytes, pseudonym: str, purpose: str, state: ConsentState, at: datetime | None = None
) -> ConsentChangedV2:
    """The change, sealed as consent seals it; ``bus`` is a connected ``shared.bus.Bus`` of the
    ``consent`` user (it may create event keys)."""
    keyring = EventKeyring(kek)
    keyring.attach(bus)
    key = await keyring.get_or_create(pseudonym)
    return ConsentChangedV2.of(key, pseudonym, Purpose(purpose), state, 1, at or datetime.now(UTC))


class KeysWithoutNats:
    """Subjects' event keys held in memory, for tests of consent's pieces that run without NATS
    (a consent change seals its event under the subject's key): what ``EventKeyring`` offers a
    producer, without the bucket."""

    def __init__(self) -> None:
        self.keys: dict[str, SubjectKey] = {}

    def get_or_create_blocking(self, pseudonym: str) -> SubjectKey:
        return self.keys.setdefault(pseudonym, SubjectKey.of(uuid.uuid4().hex, pseudonym, os.urandom(32)))

    def get_or_create_many_blocking(self, pseudonyms: list[str]) -> dict[str, SubjectKey]:
        return {p: self.get_or_create_blocking(p) for p in pseudonyms}
