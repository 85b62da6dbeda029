"""Minimised, pseudonymised HRIS facts republished by the consent service on ``hris.*``.

Employee names, e-mails and raw ids never leave the consent service: subjects appear only as
pseudonyms, and each contract carries only what its consumers need.

What the events say about a person (org unit, dates, role family, country, language) travels
sealed under the subject's event key (``shared.events.sealed``) in the ``.v2`` contracts, the only
ones consent produces: erasing the key makes every copy in the HRIS stream unreadable. Consumers
open them with :func:`opened`, which hands their handler the ``.v1`` model (in memory only), so
``.v1`` copies still in the stream and ``.v2`` ones take the same path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.datakeys import SubjectKey
from shared.events.base import Event
from shared.events.consent import PSEUDONYM_PATTERN
from shared.events.sealed import FactsModel, Keyring, SealedEvent, SealedFields

ORG_UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class SubjectAssigned(Event):
    """A subject belongs to ``org_unit`` from ``effective_from`` on (for check-in's contributions)."""

    type: Literal["hris.subject.assigned.v1"] = "hris.subject.assigned.v1"
    subject_template = "hris.subject.assigned.v1"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    effective_from: date


ROLE_FAMILY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"
TRIGGER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# A short label chosen by HR ("Q3 planning deadline"): letters, digits, spaces and light punctuation,
# bounded, so that no description or free text rides along.
TRIGGER_LABEL_PATTERN = r"^[\w][\w .,:/&+()'-]{0,79}$"
TriggerKind = Literal["deadline", "reorganisation", "layoff_announcement", "policy_change"]


class SubjectLeft(Event):
    """A subject left the organisation on ``effective_from``: stop attributing them to an org unit."""

    type: Literal["hris.subject.left.v1"] = "hris.subject.left.v1"
    subject_template = "hris.subject.left.v1"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    effective_from: date


class OrgUnitChanged(Event):
    """An org unit exists under ``parent`` (``active``) or was closed, from ``effective_from`` on.

    Only ids: a unit's display name is not needed to aggregate and is kept out of the bus.
    ``parent`` is null for a root unit and for a closed one.
    """

    type: Literal["hris.org.unit_changed.v1"] = "hris.org.unit_changed.v1"
    subject_template = "hris.org.unit_changed.v1"

    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    parent: str | None = Field(default=None, pattern=ORG_UNIT_PATTERN)
    state: Literal["active", "closed"]
    effective_from: date


class Trigger(BaseModel):
    """A trigger's fields, one definition for the HRIS format (``shared.hris.schema``) and the
    event republished from it, so the two cannot drift apart."""

    type: str  # narrowed by each subclass; declared here so that it stays the first field
    trigger_id: str = Field(pattern=TRIGGER_ID_PATTERN)
    kind: TriggerKind
    org_units: list[Annotated[str, Field(pattern=ORG_UNIT_PATTERN)]] = Field(min_length=1, max_length=500)
    starts_on: date
    ends_on: date | None = None
    label: str | None = Field(default=None, max_length=80, pattern=TRIGGER_LABEL_PATTERN)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class TriggerAnnounced(Trigger, Event):
    """A known trigger (deadline, reorganisation, layoff announcement, policy change) for org units.

    The aggregator correlates group trends with these; ``label`` is a bounded name, never a text.
    Announcing the same ``trigger_id`` again replaces the earlier announcement.
    """

    type: Literal["hris.trigger.announced.v1"] = "hris.trigger.announced.v1"
    subject_template = "hris.trigger.announced.v1"


class PersonalizationProfile(Event):
    """Role family, country and language of a subject who consented to ``personalization``.

    For the recommender only (``hris.personalization.>``). A null field was not given in this
    change and leaves what the recommender knows unchanged.
    """

    type: Literal["hris.personalization.profile.v1"] = "hris.personalization.profile.v1"
    subject_template = "hris.personalization.profile.v1"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    role_family: str | None = Field(default=None, pattern=ROLE_FAMILY_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


class ManagerScopeChanged(Event):
    """The manager behind ``manager_ref`` manages ``org_units`` (and so sees their subtrees' released
    figures at the managers' minimum group size) from ``effective_from`` on; an empty list ends it.

    For the aggregator only (``hris.org.>``): the one fact it needs to scope a manager's view.
    ``manager_ref`` is ``HMAC(manager_scope_key, tenant|employee id)``, the manager's pseudonym under
    a key only consent and the aggregator hold: the aggregator computes it from a manager's token,
    never holds an employee id, and cannot link it to anything keyed by the platform pseudonym.
    Replaces the previous scope.
    """

    type: Literal["hris.org.manager_scope.v1"] = "hris.org.manager_scope.v1"
    subject_template = "hris.org.manager_scope.v1"

    manager_ref: str = Field(pattern=PSEUDONYM_PATTERN)
    org_units: list[Annotated[str, Field(pattern=ORG_UNIT_PATTERN)]] = Field(max_length=500)
    effective_from: date


# --- sealed (v2) --------------------------------------------------------------------------------


class AssignmentFacts(BaseModel):
    """The sealed part of :class:`SubjectAssignedV2`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    effective_from: date


class LeavingFacts(BaseModel):
    """The sealed part of :class:`SubjectLeftV2`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date


class ProfileFacts(BaseModel):
    """The sealed part of :class:`PersonalizationProfileV2`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role_family: str | None = Field(default=None, pattern=ROLE_FAMILY_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)


ClearModel = type[Event]  # an alias: inside a contract, ``type`` is the event's type field


class _SealedSubjectEvent(SealedEvent):
    """A v1 subject event with everything but the pseudonym sealed (no ``type``: not a contract)."""

    clear_model: ClassVar[ClearModel]

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    sealed: SealedFields

    @classmethod
    def of(cls, key: SubjectKey, clear: Event) -> Self:
        """``clear`` (the v1 event) sealed under the subject's ``key`` (a new event id)."""
        if not isinstance(clear, cls.clear_model):
            raise TypeError(f"{cls.__name__} seals {cls.clear_model.__name__}")
        facts = cls.facts_model.model_validate(clear.model_dump(include=set(cls.facts_model.model_fields)))
        return cls.seal_for(key, facts, pseudonym=getattr(clear, "pseudonym"))  # noqa: B009

    def unsealed(self, facts: BaseModel) -> Any:
        """The v1 event with the opened facts (in memory only, never published; same event id,
        so idempotency records still match)."""
        return self.clear_model.model_validate(
            {"event_id": self.event_id, "pseudonym": self.pseudonym, **facts.model_dump()}
        )


class SubjectAssignedV2(_SealedSubjectEvent):
    """A subject belongs to an org unit from a date on (check-in and escalation, for contributions).

    Changed from v1: only ``pseudonym`` is in the clear; org unit and date are
    :class:`AssignmentFacts` sealed under the subject's event key. Open with :func:`opened`.
    """

    type: Literal["hris.subject.assigned.v2"] = "hris.subject.assigned.v2"
    subject_template = "hris.subject.assigned.v2"
    facts_model: ClassVar[FactsModel] = AssignmentFacts
    clear_model: ClassVar[ClearModel] = SubjectAssigned


class SubjectLeftV2(_SealedSubjectEvent):
    """A subject left the organisation: stop attributing them to an org unit.

    Changed from v1: the leaving date is :class:`LeavingFacts`, sealed. Open with :func:`opened`.
    """

    type: Literal["hris.subject.left.v2"] = "hris.subject.left.v2"
    subject_template = "hris.subject.left.v2"
    facts_model: ClassVar[FactsModel] = LeavingFacts
    clear_model: ClassVar[ClearModel] = SubjectLeft


class PersonalizationProfileV2(_SealedSubjectEvent):
    """Role family, country and language of a subject who consented to ``personalization``.

    For the recommender only (``hris.personalization.>``). Changed from v1: the profile is
    :class:`ProfileFacts`, sealed. A null field was not given in this change and leaves what the
    recommender knows unchanged. Gate first (``gated(..., purpose="personalization")``), then open
    with :func:`opened`.
    """

    type: Literal["hris.personalization.profile.v2"] = "hris.personalization.profile.v2"
    subject_template = "hris.personalization.profile.v2"
    facts_model: ClassVar[FactsModel] = ProfileFacts
    clear_model: ClassVar[ClearModel] = PersonalizationProfile


_SEALED_AS: dict[type[Event], type[_SealedSubjectEvent]] = {
    SubjectAssigned: SubjectAssignedV2,
    SubjectLeft: SubjectLeftV2,
    PersonalizationProfile: PersonalizationProfileV2,
}

HrisSubjectEvent = Annotated[
    SubjectAssigned | SubjectLeft | SubjectAssignedV2 | SubjectLeftV2, Field(discriminator="type")
]
"""What a consumer of ``hris.subject.>`` validates (v1 copies may still be in the stream)."""
HrisProfileEvent = Annotated[PersonalizationProfile | PersonalizationProfileV2, Field(discriminator="type")]
"""What a consumer of ``hris.personalization.>`` validates."""


class ProducerKeyring(Protocol):
    """What a producer needs from ``shared.eventkeys.EventKeyring``."""

    def get_or_create_many_blocking(self, pseudonyms: Iterable[str]) -> Mapping[str, SubjectKey]: ...


def sealed_for_the_bus(keyring: ProducerKeyring, events: Sequence[Event]) -> list[Event]:
    """``events`` in order, each subject event replaced by its sealed v2 (the producer's one way to
    build them); the subjects' keys are fetched, or created, together."""
    keys = keyring.get_or_create_many_blocking({getattr(e, "pseudonym") for e in events if type(e) in _SEALED_AS})  # noqa: B009
    return [_SEALED_AS[type(e)].of(keys[getattr(e, "pseudonym")], e) if type(e) in _SEALED_AS else e for e in events]  # noqa: B009


def opened(keyring: Keyring, handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Wrap a consumer handler of HRIS subject events: a v2 event is opened under its subject's
    event key and handed over as its v1 model; a v1 copy is handed over as it is. No key means the
    subject was erased: the event is acknowledged and dropped. A failure to reach the key bucket
    is an infrastructure error (``EventKeysUnavailable``): the consumer retries it.

    Any consumer of ``hris.subject.>`` or ``hris.personalization.>`` calls this (with
    ``shared.eventkeys.EventKeyring``, needing the ``event_key_kek`` secret); wrap it in ``gated``
    when the flow needs consent, so that a denied event never touches the key."""

    def handle(session: Any, event: Any) -> None:
        if isinstance(event, _SealedSubjectEvent):
            key = keyring.get_blocking(event.pseudonym)
            if key is None:
                return
            event = event.unsealed(event.open(key))
        handler(session, event)

    return handle
