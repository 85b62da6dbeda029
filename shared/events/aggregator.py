"""What the aggregator publishes (``aggregator.reporting.*``): facts about stored releases only.

Payloads name an ISO week, org units and metrics, and carry figures that already passed the release
rules (k-anonymous, complementary-suppressed, noised): never a contribution, a token or a pseudonym.
Suggested interventions travel as playbook codes; their text is looked up per language.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.events.base import Event
from shared.events.contribution import ISO_WEEK_PATTERN, Metric
from shared.events.hris import ORG_UNIT_PATTERN, TRIGGER_ID_PATTERN, TriggerKind

PLAYBOOK_CODE_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class RollupPublished(Event):
    """The release of one ISO week was computed and stored; read it at ``GET /v1/rollups``."""

    type: Literal["aggregator.reporting.rollup_published.v1"] = "aggregator.reporting.rollup_published.v1"
    subject_template = "aggregator.reporting.rollup_published.v1"

    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    cells_released: int = Field(ge=0)
    cells_suppressed: int = Field(ge=0)


class InsightDetected(Event):
    """A change in a released series beyond what its noise explains, with the trigger it overlaps."""

    type: Literal["aggregator.reporting.insight_detected.v1"] = "aggregator.reporting.insight_detected.v1"
    subject_template = "aggregator.reporting.insight_detected.v1"

    insight_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    kind: Literal["drop", "drift"]
    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    metric: Metric
    iso_week: str = Field(pattern=ISO_WEEK_PATTERN)
    change: float
    change_low: float
    change_high: float
    trigger_id: str | None = Field(default=None, pattern=TRIGGER_ID_PATTERN)
    trigger_kind: TriggerKind | None = None
    trigger_starts_on: date | None = None
    suggestion: str = Field(pattern=PLAYBOOK_CODE_PATTERN)


class ForecastIssued(Event):
    """An expected adverse change around an announced trigger, estimated from released series only.

    The issue calls this ``insight.forecast.v1``; subjects carry their producer's prefix. The change
    and its 95% prediction interval come from how the same metric moved around ``past_triggers``
    earlier triggers of the same kind for ``based_on`` (the unit itself, or its parent when the unit
    is too new): post-processing of stored releases, nothing new released about anyone.
    """

    type: Literal["aggregator.reporting.forecast_issued.v1"] = "aggregator.reporting.forecast_issued.v1"
    subject_template = "aggregator.reporting.forecast_issued.v1"

    forecast_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    org_unit: str = Field(pattern=ORG_UNIT_PATTERN)
    based_on: str = Field(pattern=ORG_UNIT_PATTERN)
    metric: Metric
    trigger_id: str = Field(pattern=TRIGGER_ID_PATTERN)
    trigger_kind: TriggerKind
    trigger_starts_on: date
    advise_on: date
    expected_change: float
    change_low: float
    change_high: float
    past_triggers: int = Field(ge=1)
    suggestion: str = Field(pattern=PLAYBOOK_CODE_PATTERN)
