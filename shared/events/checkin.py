"""Contracts published on ``checkin.*``: purpose-scoped derivatives of a check-in, and nudges.

No contract here carries a raw answer, a score or free text in the clear. Each purpose-scoped
event says which consent it flows under (:meth:`consent_current`), so that a consumer checks the
same rule the producer checked: wrap the handler in :func:`gated` and a withdrawal that lands
between produce and consume stops the flow at the consumer (the event is acknowledged and
dropped, never applied). While the consumer's gate is not synced its answer is *unknown*, and the
event is put back to be judged later, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.consent_gate import Consent
from shared.events.base import Event
from shared.events.consent import PSEUDONYM_PATTERN
from shared.events.sealed import FactsModel, Keyring, SealedEvent, SealedFields

LANG_PATTERN = r"^[a-z]{2}$"
ISO_WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"

Need = Literal["sleep", "stress", "anxiety", "workload", "isolation", "parenting", "low_mood", "energy"]


def _unique_needs(needs: list[Need]) -> list[Need]:
    if len(set(needs)) != len(needs):
        raise ValueError("needs must be unique")
    return needs


Needs = Annotated[list[Need], Field(max_length=8), AfterValidator(_unique_needs)]
RiskReason = Literal["self_harm_item", "crisis_language", "who5_very_low", "phq9_severe", "contact_requested"]
Severity = Literal["routine", "high", "critical"]


class ConsentView(Protocol):
    """What a consumer needs from its consent gate (``shared.consent_gate.ConsentGate``)."""

    def allowed(self, pseudonym: str, purpose: str) -> bool: ...

    def answer(self, pseudonym: str, purpose: str) -> Consent: ...


class PurposeScoped:
    """Mixin: an event that flows under one purpose's consent of its subject ``pseudonym``."""

    purpose: ClassVar[str]
    if TYPE_CHECKING:
        pseudonym: str  # a field of each event (declared there, so its schema is unchanged)

    def consent_answer(self, gate: ConsentView) -> Consent:
        """Granted, denied, or unknown (the gate is not synced)."""
        return gate.answer(self.pseudonym, self.purpose)

    def consent_current(self, gate: ConsentView) -> bool:
        return self.consent_answer(gate) is Consent.GRANTED


class SealedText(BaseModel):
    """Free text sealed (AES-256-GCM) under the subject's data key; erasure shreds every copy.

    Only the check-in service can open it (``POST /v1/shared-notes/open``, counsellors, audited),
    and only while the subject's data key exists.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="Id of the subject's data key.")
    alg: Literal["A256GCM"] = "A256GCM"
    blob: str = Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=12_000, description="base64url(version|nonce|ct).")


class PersonalizationSubmitted(PurposeScoped, Event):
    """Needs derived from a check-in, for the recommender (``personalization`` consent).

    No longer produced (its needs, language and week were readable in the stream after erasure):
    see :class:`PersonalizationSubmittedV2`. Kept so that copies still in the stream parse.

    Derived from scores and from the note through a per-language lexicon: never the note itself.
    """

    type: Literal["checkin.personalization.submitted.v1"] = "checkin.personalization.submitted.v1"
    subject_template = "checkin.personalization.submitted.v1"
    purpose: ClassVar[str] = "personalization"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    lang: str = Field(pattern=LANG_PATTERN)
    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    needs: Needs = Field(default_factory=list)


class EscalationFlagged(PurposeScoped, Event):
    """Risk screening fired, or the employee asked to talk to someone (for escalation).

    No longer produced (severity, reasons and country were readable in the stream after erasure):
    see :class:`EscalationFlaggedV2`. Kept so that copies still in the stream parse.

    Flows under ``escalation`` consent, or without it when the employee asked for contact
    (``contact_requested``): the explicit request is its own basis. ``note`` is present only if the
    employee ticked "share my note with the counsellor", and is sealed under their data key.
    """

    type: Literal["checkin.escalation.flagged.v1"] = "checkin.escalation.flagged.v1"
    subject_template = "checkin.escalation.flagged.v1"
    purpose: ClassVar[str] = "escalation"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    checkin_ref: UUID = Field(description="Opaque reference: later flags for the same check-in share it.")
    severity: Severity
    reasons: list[RiskReason] = Field(min_length=1, max_length=5)
    contact_requested: bool
    lang: str = Field(pattern=LANG_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    flagged_at: datetime
    note: SealedText | None = None

    def consent_answer(self, gate: ConsentView) -> Consent:
        # The employee's own request to talk is its own basis, whatever the gate knows.
        return Consent.GRANTED if self.contact_requested else gate.answer(self.pseudonym, self.purpose)


class PersonalizationFacts(BaseModel):
    """The sealed part of :class:`PersonalizationSubmittedV2`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lang: str = Field(pattern=LANG_PATTERN)
    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    needs: Needs = Field(default_factory=list)


class PersonalizationSubmittedV2(SealedEvent):
    """Needs derived from a check-in, for the recommender (``personalization`` consent).

    Only the pseudonym is in the clear; language, ISO week and needs are
    :class:`PersonalizationFacts` sealed under the subject's event key: open them with
    ``event.open(key)`` where ``key = keyring.get(event.pseudonym)`` (``shared.eventkeys``). No key
    means the subject was erased: drop the event (``gated_sealed`` does all of this).
    """

    type: Literal["checkin.personalization.submitted.v2"] = "checkin.personalization.submitted.v2"
    subject_template = "checkin.personalization.submitted.v2"
    purpose: ClassVar[str] = "personalization"
    facts_model: ClassVar[FactsModel] = PersonalizationFacts

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    sealed: SealedFields

    def consent_answer(self, gate: ConsentView, facts: Any = None) -> Consent:
        return gate.answer(self.pseudonym, self.purpose)


class EscalationFacts(BaseModel):
    """The sealed part of :class:`EscalationFlaggedV2`: what a counsellor needs to triage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    reasons: list[RiskReason] = Field(min_length=1, max_length=5)
    contact_requested: bool
    lang: str = Field(pattern=LANG_PATTERN)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    flagged_at: datetime
    note: SealedText | None = Field(
        default=None, description="Present only if the employee chose to share it; opens only through check-in."
    )


class EscalationFlaggedV2(SealedEvent):
    """Risk screening fired, or the employee asked to talk to someone (for escalation).

    Changed from v1: only ``pseudonym`` and the opaque ``checkin_ref`` are in the clear; severity,
    reasons, ``contact_requested``, language, country, time and the (still separately sealed) note
    are :class:`EscalationFacts` sealed under the subject's event key, so erasure makes every copy
    in the stream and in dead letters unreadable. A consumer opens them with ``event.open(key)``,
    ``key = keyring.get(event.pseudonym)`` (``shared.eventkeys.EventKeyring``, needs the
    ``event_key_kek`` secret); no key means the subject was erased: drop the event. The consent
    rule is unchanged and needs the opened facts: ``event.consent_answer(gate, facts)`` (flows
    under ``escalation`` consent, or without it when ``facts.contact_requested``).
    ``gated_sealed(gate, keyring, handler)`` does all of this and calls ``handler(session, event,
    facts)``.
    """

    type: Literal["checkin.escalation.flagged.v2"] = "checkin.escalation.flagged.v2"
    subject_template = "checkin.escalation.flagged.v2"
    purpose: ClassVar[str] = "escalation"
    facts_model: ClassVar[FactsModel] = EscalationFacts

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    checkin_ref: UUID = Field(description="Opaque reference: later flags for the same check-in share it.")
    sealed: SealedFields

    def unsealed(self, facts: EscalationFacts) -> EscalationFlagged:
        """The flag with its facts opened, as the v1 model (in memory only, never published), for
        consumers written against v1 (same event id, so idempotency records still match)."""
        return EscalationFlagged(
            event_id=self.event_id, pseudonym=self.pseudonym, checkin_ref=self.checkin_ref, **facts.model_dump()
        )

    def consent_answer(self, gate: ConsentView, facts: Any = None) -> Consent:
        if not isinstance(facts, EscalationFacts):
            return Consent.DENIED
        # The employee's own request to talk is its own basis, whatever the gate knows.
        return Consent.GRANTED if facts.contact_requested else gate.answer(self.pseudonym, self.purpose)


class NudgeDue(PurposeScoped, Event):
    """An opted-in weekly check-in reminder is due now (``checkin`` consent, checked when sent)."""

    type: Literal["checkin.nudge.due.v1"] = "checkin.nudge.due.v1"
    subject_template = "checkin.nudge.due.v1"
    purpose: ClassVar[str] = "checkin"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN)
    lang: str = Field(pattern=LANG_PATTERN)
    due_at: datetime


GatedEvent = PersonalizationSubmitted | EscalationFlagged | NudgeDue


def gated(
    gate: ConsentView, handler: Callable[[Any, Any], None], *, purpose: str | None = None
) -> Callable[[Any, Any], None]:
    """Wrap a consumer handler so that an event is applied only under current consent.

    Granted: applied. Denied (withdrawn, lapsed, never given): the consumer records and
    acknowledges the event, but the handler never sees it. Unknown (the gate is not synced):
    :class:`~shared.bus.failures.NotYet` is raised, so the consumer puts the event back, uncounted,
    and judges it again once the gate has synced; the consumer also waits for the gate before
    fetching (it finds the gate on ``handle.consent_gate``).

    ``purpose`` gates any event with a ``pseudonym`` under that purpose (e.g. an HRIS profile
    under ``personalization``); without it the event's own rule (``consent_answer``) applies.
    """
    from shared.bus.failures import NotYet

    def handle(session: Any, event: Any) -> None:
        answer = gate.answer(event.pseudonym, purpose) if purpose else event.consent_answer(gate)
        if answer is Consent.UNKNOWN:
            raise NotYet("consent unknown")
        if answer is Consent.GRANTED:
            handler(session, event)

    handle.consent_gate = gate  # type: ignore[attr-defined]
    return handle


@dataclass(frozen=True)
class Produced:
    """A sealed event with its facts, while its producer still has them: the producer's last
    consent check before the write (``consent_current``) needs them, the stream never sees them."""

    event: Any  # a SealedEvent that is purpose-scoped (EscalationFlaggedV2, PersonalizationSubmittedV2)
    facts: BaseModel

    def consent_current(self, gate: ConsentView) -> bool:
        return bool(self.event.consent_answer(gate, self.facts) is Consent.GRANTED)


def gated_sealed(
    gate: ConsentView, keyring: Keyring, handler: Callable[[Any, Any, Any], None]
) -> Callable[[Any, Any], None]:
    """:func:`gated` for sealed events: open the facts, check consent, call ``handler(session,
    event, facts)``; an unsealed v1 event is judged as :func:`gated` does, with ``facts=None``.

    An event whose subject's key is gone (erased) is acknowledged and dropped; an unknown consent
    answer puts the event back (``NotYet``), as :func:`gated` does; a failure to reach the key
    bucket is an infrastructure error (``EventKeysUnavailable``), so the consumer retries it."""
    from shared.bus.failures import NotYet

    def handle(session: Any, event: Any) -> None:
        if not isinstance(event, SealedEvent):  # a v1 copy still in the stream: nothing to open
            gated(gate, lambda s, e: handler(s, e, None))(session, event)
            return
        sealed: Any = event  # a SealedEvent that is also purpose-scoped (pseudonym, consent_answer)
        if gate.answer(sealed.pseudonym, sealed.purpose) is Consent.UNKNOWN:
            raise NotYet("consent unknown")  # before touching the key: the gate is blind
        key = keyring.get_blocking(sealed.pseudonym)
        if key is None:
            return
        facts = sealed.open(key)
        answer = sealed.consent_answer(gate, facts)
        if answer is Consent.UNKNOWN:
            raise NotYet("consent unknown")
        if answer is Consent.GRANTED:
            handler(session, event, facts)

    handle.consent_gate = gate  # type: ignore[attr-defined]
    return handle
