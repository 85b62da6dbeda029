"""Minimised, pseudonymised HRIS facts republished by the consent service on ``hris.*``.

Employee names, e-mails and raw ids never leave the consent service: subjects appear only as
pseudonyms, and each contract carries only what its consumers need.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

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
