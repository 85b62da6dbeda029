"""Settings of the recommender service (env prefix ``KINWELL_RECOMMENDER_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RecommenderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="KINWELL_RECOMMENDER_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "recommender"
    port: int = 8003
