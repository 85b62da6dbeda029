"""Sealed event fields: the facts about a person that an event carries but routing never needs.

A contract keeps in the clear only what the broker and the consumer's idempotency and consent
checks need (the pseudonym, an opaque reference); everything else — severity, reasons, needs,
country, org unit, role, consent state — is a pydantic model sealed (AES-256-GCM) under the
subject's event key (``shared.eventkeys``). The associated data binds the ciphertext to the event
type, the event id and the subject, so a sealed block cannot be moved onto another event or person.
Erasing the key makes every copy unreadable: stream, dead letter, backup.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal, Protocol, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from shared.datakeys import SubjectKey
from shared.events.base import Event

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound="SealedEvent")


FactsModel = type[BaseModel]  # named here: inside a contract, ``type`` is the event's type field


class Keyring(Protocol):
    """What a consumer needs from ``shared.eventkeys.EventKeyring``."""

    def get_blocking(self, pseudonym: str) -> Any: ...


class SealedFields(BaseModel):
    """A block of an event's fields sealed under the subject's event key (``shared.eventkeys``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Id of the subject's event key.")
    alg: Literal["A256GCM"] = "A256GCM"
    blob: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=24_000, description="base64url(version|nonce|ct).")


def _context(event_type: str, event_id: UUID) -> tuple[str, str, str]:
    return ("event", event_type, str(event_id))


# A ciphertext is as long as its plaintext: padded (with JSON whitespace) to a multiple of this,
# a block's length does not tell one value from another of a different length ("lapsed" from
# "withdrawn", "high" from "critical").
PAD_TO = 64


def seal(key: SubjectKey, event_type: str, event_id: UUID, fields: BaseModel) -> SealedFields:
    plain = fields.model_dump_json().encode()
    blob = key.seal(plain + b" " * (-len(plain) % PAD_TO), *_context(event_type, event_id))
    return SealedFields(key_id=key.key_id, blob=base64.urlsafe_b64encode(blob).decode("ascii").rstrip("="))


def open_sealed(key: SubjectKey, event_type: str, event_id: UUID, sealed: SealedFields, model: type[M]) -> M:
    """The sealed fields as ``model``; ``shared.datakeys.CiphertextInvalid`` if they do not open."""
    raw = base64.urlsafe_b64decode(sealed.blob + "=" * (-len(sealed.blob) % 4))
    return model.model_validate_json(key.open(raw, *_context(event_type, event_id)))


class SealedEvent(Event):
    """An event whose personal fields are one :class:`SealedFields` block of ``facts_model``."""

    facts_model: ClassVar[FactsModel]
    sealed: SealedFields

    @classmethod
    def seal_for(cls: type[E], key: SubjectKey, facts: BaseModel, **clear: Any) -> E:
        """Build the event (``clear`` fields in the clear) with ``facts`` sealed under ``key``."""
        if not isinstance(facts, cls.facts_model):
            raise TypeError(f"{cls.__name__} seals {cls.facts_model.__name__}")
        event_id = uuid4()
        event_type = str(cls.model_fields["type"].default)
        return cls(event_id=event_id, sealed=seal(key, event_type, event_id, facts), **clear)

    def open(self, key: SubjectKey) -> Any:
        """The sealed facts; ``shared.datakeys.CiphertextInvalid`` if ``key`` is not theirs."""
        return open_sealed(key, str(self.type), self.event_id, self.sealed, self.facts_model)  # type: ignore[attr-defined]
