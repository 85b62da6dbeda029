"""De-identified contributions to the aggregator (``contribution.<purpose>.<event>.v<N>``).

A contribution names an org unit, an ISO week, a metric and a value, plus a per-period token
``HMAC(period key, pseudonym|week)`` so that one person counts once per week and two weeks cannot
be linked. It never carries a subject id, free text or a time finer than the week, and producers
publish them in shuffled batches with no trace headers so that not even the message time points
back at a check-in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.events.base import Event
from shared.events.hris import ORG_UNIT_PATTERN

ISO_WEEK_PATTERN = r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"
PERIOD_TOKEN_PATTERN = r"^[0-9a-f]{64}$"  # noqa: S105 - a regex, not a secret

# Check-in metrics, then weekly work-pattern features (``POST /v1/signals``, ``work_patterns``
# consent): days worked, mean meeting and focus hours per worked day, share of messages sent
# outside working hours (percent). Then program metrics (the employer's view of the programme, as
# de-identified counters under the same release rules): from the recommender, 0/1 per person and
# week, a resource viewed, a resource completed, and an EAP referral (a professional-help resource
# viewed or completed: its producer is the recommender, never escalation, which produced none);
# ``resource_engaged`` is produced by nobody (kept: v1 loses no value); from escalation, hours to
# acknowledge / to contact. Added to v1 as new values: every producer and consumer shares this one
# contract, and no existing value changed meaning.
Metric = Literal[
    "who5_index",
    "mood",
    "days_worked",
    "meeting_hours_per_day",
    "focus_hours_per_day",
    "after_hours_message_share",
    "resource_engaged",
    "eap_referred",
    "escalation_ack_hours",
    "escalation_contact_hours",
    "resource_viewed",
    "resource_completed",
]
Source = Literal["checkin", "recommender", "escalation"]
PROGRAM_METRICS: tuple[str, ...] = (
    "resource_engaged",
    "resource_viewed",
    "resource_completed",
    "eap_referred",
    "escalation_ack_hours",
    "escalation_contact_hours",
)
METRIC_SOURCES: dict[str, str] = {
    "resource_engaged": "recommender",
    "resource_viewed": "recommender",
    "resource_completed": "recommender",
    "eap_referred": "recommender",
    "escalation_ack_hours": "escalation",
    "escalation_contact_hours": "escalation",
}
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "who5_index": (0, 100),
    "mood": (1, 5),
    "days_worked": (0, 7),
    "meeting_hours_per_day": (0, 24),
    "focus_hours_per_day": (0, 24),
    "after_hours_message_share": (0, 100),
    "resource_engaged": (0, 1),
    "resource_viewed": (0, 1),
    "resource_completed": (0, 1),
    "eap_referred": (0, 1),
    "escalation_ack_hours": (0, 72),
    "escalation_contact_hours": (0, 72),
}


class ContributionRecorded(Event):
    """One subject's value of one metric for one org unit and ISO week (check-in metrics under
    ``aggregate_insights``, work-pattern features under ``work_patterns``; program metrics from the
    recommender and escalation, each metric from its one source)."""

    type: Literal["contribution.aggregate.recorded.v1"] = "contribution.aggregate.recorded.v1"
    subject_template = "contribution.aggregate.recorded.v1"

    source: Source
    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    metric: Metric
    value: float = Field(ge=0, le=100)
    period_token: str = Field(pattern=PERIOD_TOKEN_PATTERN)

    @model_validator(mode="after")
    def _in_range(self) -> ContributionRecorded:
        low, high = METRIC_RANGES[self.metric]
        if not low <= self.value <= high:
            raise ValueError("value out of range for metric")
        if METRIC_SOURCES.get(self.metric, "checkin") != self.source:
            raise ValueError("metric not published by this source")
        return self


class ContributionRetracted(Event):
    """The subject behind ``period_token`` withdrew ``aggregate_insights`` during ``iso_week``.

    The aggregator drops that token's contributions for the week if the week is not released yet,
    and ignores any that arrive later: the consumer-side stop for a flow that carries no subject id.
    """

    type: Literal["contribution.aggregate.retracted.v1"] = "contribution.aggregate.retracted.v1"
    subject_template = "contribution.aggregate.retracted.v1"

    source: Source
    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    period_token: str = Field(pattern=PERIOD_TOKEN_PATTERN)
