"""Contracts published by the consent service on ``consent.<purpose>.<event>.v<N>``.

A consent change says something about a person (what they chose, under which policy version,
when), so :class:`ConsentChangedV2`, the only one consent produces, keeps in the clear only the
pseudonym and the purpose (in the subject: the broker routes on it) and seals state, policy
version and time under the subject's event key (``shared.events.sealed``): once the subject is
erased, no copy in the CONSENT stream or a dead letter says anything about their choices.

Consumers read every change through :func:`consent_changes`, which hands their handler a
:class:`ConsentChange` (in memory only). The gates never need these events: they read the
``consent`` KV bucket (``shared.consent_gate``), whose values consent purges on erasure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.datakeys import SubjectKey
from shared.events.base import Event
from shared.events.sealed import FactsModel, Keyring, SealedEvent, SealedFields

PSEUDONYM_PATTERN = r"^[0-9a-f]{64}$"


class Purpose(StrEnum):
    """Purposes an employee can consent to, one by one."""

    checkin = "checkin"
    personalization = "personalization"
    aggregate_insights = "aggregate_insights"
    escalation = "escalation"
    work_patterns = "work_patterns"
    fairness_audit = "fairness_audit"


ConsentState = Literal["granted", "withdrawn", "lapsed"]


class ConsentChanged(Event):
    """A subject's consent to one purpose was granted, withdrawn, or lapsed by a new policy.

    No longer produced (state, policy version and time stayed readable in the CONSENT stream after
    erasure): see :class:`ConsentChangedV2`. Kept only so that copies still in the stream when
    consent moved to v2 are applied rather than dead-lettered; remove it once the stream's
    ``max_age`` (7 days) has passed since every deployment runs v2.
    """

    type: Literal["consent.changed.v1"] = "consent.changed.v1"
    subject_template = "consent.{purpose}.changed.v1"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN, description="HMAC pseudonym of the subject.")
    purpose: Purpose
    state: ConsentState
    policy_version: int = Field(ge=1)
    changed_at: datetime


class ConsentFacts(BaseModel):
    """The sealed part of :class:`ConsentChangedV2`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: ConsentState
    policy_version: int = Field(ge=1)
    changed_at: datetime


class ConsentChangedV2(SealedEvent):
    """A subject's consent to one purpose was granted, withdrawn, or lapsed by a new policy.

    Changed from v1: only ``pseudonym`` and ``purpose`` (routing, idempotency) are in the clear;
    state, policy version and time are :class:`ConsentFacts` sealed under the subject's event key.
    Read it with :func:`consent_changes`.
    """

    type: Literal["consent.changed.v2"] = "consent.changed.v2"
    subject_template = "consent.{purpose}.changed.v2"
    facts_model: ClassVar[FactsModel] = ConsentFacts

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN, description="HMAC pseudonym of the subject.")
    purpose: Purpose
    sealed: SealedFields

    @classmethod
    def of(
        cls, key: SubjectKey, pseudonym: str, purpose: Purpose, state: ConsentState, version: int, at: datetime
    ) -> ConsentChangedV2:
        """The change sealed under the subject's event ``key`` (the producer's one way to build it)."""
        facts = ConsentFacts(state=state, policy_version=version, changed_at=at)
        return cls.seal_for(key, facts, pseudonym=pseudonym, purpose=purpose)


@dataclass(frozen=True)
class ConsentChange:
    """A consent change as a consumer acts on it (in memory only, never published).

    ``erased``: the subject's event key is gone, so the subject was erased (or is being erased:
    consent shreds the key as soon as the erasure commits, usually before its own ``withdrawn``
    events are consumed). The change then reads as ``withdrawn`` at the time it is handled, with no
    policy version: whatever it said, every gate already denies (the KV bucket says ``withdrawn``,
    then nothing), and deleting what the purpose held is what the erasure does anyway.
    """

    pseudonym: str
    purpose: Purpose
    state: ConsentState
    changed_at: datetime
    policy_version: int | None
    event_id: Any = None
    erased: bool = False

    @property
    def ended(self) -> bool:
        """Withdrawn or lapsed: what was held only for the purpose goes."""
        return self.state != "granted"


ConsentEvent = Annotated[ConsentChangedV2 | ConsentChanged, Field(discriminator="type")]
"""What a consumer of ``consent.>`` validates (v1 copies may still be in the stream)."""


def change_of(keyring: Keyring, event: ConsentChangedV2 | ConsentChanged) -> ConsentChange | None:
    """The change ``event`` describes, opened under its subject's event key; None when it must be
    ignored. No key: the subject was erased (see :attr:`ConsentChange.erased`). A key with another
    id: the subject was erased and has come back since (a new key); the event belongs to their
    previous life, which the erasure already deleted, and is ignored — acting on it could delete
    what they gave since. A key that does not open a block it names raises
    ``shared.datakeys.CiphertextInvalid`` (tampering: the consumer dead-letters it); an unreachable
    bucket raises ``EventKeysUnavailable`` (the consumer retries)."""
    if isinstance(event, ConsentChanged):  # a v1 copy still in the stream
        return ConsentChange(
            event.pseudonym, event.purpose, event.state, event.changed_at, event.policy_version, event.event_id
        )
    key = keyring.get_blocking(event.pseudonym)
    if key is None:
        now = datetime.now(UTC)
        return ConsentChange(event.pseudonym, event.purpose, "withdrawn", now, None, event.event_id, erased=True)
    if key.key_id != event.sealed.key_id:
        return None
    facts: ConsentFacts = event.open(key)
    return ConsentChange(
        event.pseudonym, event.purpose, facts.state, facts.changed_at, facts.policy_version, event.event_id
    )


def consent_changes(keyring: Keyring, handler: Callable[[Any, ConsentChange], None]) -> Callable[[Any, Any], None]:
    """Wrap a consumer handler of ``consent.>``: each event (:data:`ConsentEvent`) is handed over
    as the :class:`ConsentChange` :func:`change_of` reads from it, or not at all when it says to
    ignore it. Every consumer of consent changes calls this (with ``shared.eventkeys.EventKeyring``,
    needing the ``event_key_kek`` secret)."""

    def handle(session: Any, event: Any) -> None:
        change = change_of(keyring, event)
        if change is not None:
            handler(session, change)

    return handle
