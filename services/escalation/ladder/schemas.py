"""The escalation policy and on-call rosters (admin documents), validated strictly.

A policy is a list of rules in order (PagerDuty's escalation rules): each names its targets and
how long to wait, per severity, for an acknowledgement before the next rule is paged. ``loops``
runs the whole list that many times (``num_loops``); ``crisis_service`` adds a final step that
pages the external crisis service (a webhook subscription to ``escalation.page.external``).
"""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HANDLE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerSeverity(Strict):
    """Seconds, per severity (imminent, high, moderate)."""

    imminent: float = Field(gt=0, le=7 * 86400)
    high: float = Field(gt=0, le=7 * 86400)
    moderate: float = Field(gt=0, le=30 * 86400)

    def of(self, severity: str) -> float:
        return float(getattr(self, severity))


class Target(Strict):
    """Exactly one of: a counsellor's handle, a roster's on-call people, or every counsellor."""

    counsellor: str | None = Field(default=None, pattern=HANDLE)
    roster: str | None = Field(default=None, pattern=HANDLE)
    group: Literal["counsellors"] | None = None

    @model_validator(mode="after")
    def _one(self) -> Target:
        if sum(v is not None for v in (self.counsellor, self.roster, self.group)) != 1:
            raise ValueError("a target names exactly one of counsellor, roster, group")
        return self


class Rule(Strict):
    targets: list[Target] = Field(min_length=1, max_length=20)
    ack_delay_seconds: PerSeverity


class Policy(Strict):
    rules: list[Rule] = Field(min_length=1, max_length=10)
    loops: int = Field(default=1, ge=1, le=10, description="How many times the rules run (num_loops).")
    crisis_service: bool = Field(default=False, description="Page the external crisis service after the last rule.")
    contact_timeout_seconds: PerSeverity = Field(description="After an acknowledgement, re-escalate unless contacted.")

    @property
    def steps(self) -> int:
        """Ladder steps in one round: every rule in every loop, then the crisis service."""
        return len(self.rules) * self.loops + (1 if self.crisis_service else 0)


class Shift(Strict):
    """Who is on call on ``days`` from ``start`` to ``end`` (local time; crosses midnight if end <= start)."""

    days: list[Day] = Field(min_length=1, max_length=7)
    start: time
    end: time
    members: list[str] = Field(min_length=1, max_length=50)
    mode: Literal["all", "round_robin"] = "all"

    @field_validator("members")
    @classmethod
    def _handles(cls, members: list[str]) -> list[str]:
        import re

        if any(not re.fullmatch(HANDLE, m) for m in members):
            raise ValueError("members are staff handles (lower-case letters, digits, . _ -)")
        return members


class Roster(Strict):
    name: str = Field(pattern=HANDLE)
    timezone: str = Field(max_length=64, description="IANA time zone the shifts are written in.")
    shifts: list[Shift] = Field(min_length=1, max_length=50)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone") from None
        return value


class Rosters(Strict):
    rosters: list[Roster] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _unique(self) -> Rosters:
        names = [r.name for r in self.rosters]
        if len(set(names)) != len(names):
            raise ValueError("roster names must be unique")
        return self


class PolicyRead(BaseModel):
    version: int
    policy: Policy


class RostersRead(BaseModel):
    version: int
    rosters: list[Roster]
    next_cursor: str | None = Field(default=None, description="Pass as ``cursor`` for the next page; null: last page.")
