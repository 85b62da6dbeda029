"""Minimised, pseudonymised HRIS facts republished by the consent service on ``hris.*``.

Employee names, e-mails and raw ids never leave the consent service: subjects appear only as
pseudonyms, and each contract carries only what its consumers need.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shared.events.base import Event
from shared.events.consent import PSEUDONYM_PATTERN

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


class TriggerAnnounced(Event):
    """A known trigger (deadline, reorganisation, layoff announcement, policy change) for org units.

    The aggregator correlates group trends with these; ``label`` is a bounded name, never a text.
    Announcing the same ``trigger_id`` again replaces the earlier announcement.
    """

    type: Literal["hris.trigger.announced.v1"] = "hris.trigger.announced.v1"
    subject_template = "hris.trigger.announced.v1"

    trigger_id: str = Field(pattern=TRIGGER_ID_PATTERN)
    kind: TriggerKind
    org_units: list[Annotated[str, Field(pattern=ORG_UNIT_PATTERN)]] = Field(min_length=1, max_length=500)
    starts_on: date
    ends_on: date | None = None
    label: str | None = Field(default=None, max_length=80, pattern=TRIGGER_LABEL_PATTERN)

    @model_validator(mode="after")
    def _ends_after_start(self) -> TriggerAnnounced:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


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
