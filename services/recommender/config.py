"""Settings of the recommender service (env prefix ``KINWELL_RECOMMENDER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEFAULT_ATTRIBUTES = {
    "gender": ["woman", "man", "non_binary", "self_described"],
    "age_band": ["under_25", "25_34", "35_44", "45_54", "55_plus"],
}


class RecommenderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_RECOMMENDER_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "recommender"
    port: int = 8003
    # Fairness audits: what employees may self-declare (``prefer_not_to_say`` is always added),
    # the zCDP budget of one report and of one ISO week (delta only converts it for reporting), and
    # the minimum group size (the aggregator's rule: never below 3).
    fairness_attributes: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    fairness_rho: float = Field(default=0.5, gt=0, le=10)
    fairness_weekly_rho: float = Field(default=2.0, gt=0, le=50)
    fairness_delta: float = Field(default=1e-6, gt=0, lt=1e-3)
    min_group_size: int = Field(default=5, ge=3)
    audit_interval_seconds: float = Field(default=3600, gt=0)
    # Engagement counters wait for the next shuffled batch release (shared.contributions).
    contribution_release_seconds: float = Field(default=3600, gt=0)
