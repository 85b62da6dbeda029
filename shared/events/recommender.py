"""Contracts published by the recommender (``recommender.*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.base import Event

ISO_WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"


class FairnessFlagged(Event):
    """A fairness audit found a group served below four fifths of the best-served group.

    Carries only released, noised group figures (groups of at least the minimum size) and the
    attribute's value label: nothing about any one person.
    """

    type: Literal["recommender.fairness.flagged.v1"] = "recommender.fairness.flagged.v1"
    subject_template = "recommender.fairness.flagged.v1"

    report_id: str = Field(pattern=r"^[0-9a-z]{1,32}$")
    audit_week: str = Field(pattern=ISO_WEEK_PATTERN)
    attribute: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    value: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    category: str = Field(pattern=r"^[a-z_]{1,32}$")
    disparity_ratio: float = Field(ge=0)
    interval_low: float = Field(ge=0)
    interval_high: float = Field(ge=0)
