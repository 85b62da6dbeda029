"""Contracts published by the consent service on ``consent.<purpose>.<event>.v<N>``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.events.base import Event

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
    """A subject's consent to one purpose was granted, withdrawn, or lapsed by a new policy."""

    type: Literal["consent.changed.v1"] = "consent.changed.v1"
    subject_template = "consent.{purpose}.changed.v1"

    pseudonym: str = Field(pattern=PSEUDONYM_PATTERN, description="HMAC pseudonym of the subject.")
    purpose: Purpose
    state: ConsentState
    policy_version: int = Field(ge=1)
    changed_at: datetime
