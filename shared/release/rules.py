"""The release rules' configuration, shared by the aggregator and the consent statistics.

One object says how small a group may be and how much privacy one (unit, period) may spend; both
services read it from their settings, and :func:`ReleaseRules.for_manager` gives the stricter view
managers get. The floor of 3 is not configurable: below it, any group is a pair or a person.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

K_FLOOR = 3
MANAGER_K = 10


class ReleaseRules(BaseModel):
    """Minimum group size and the zCDP budget of each release.

    ``rho_count`` and ``rho_sum`` are spent per released count and bounded sum; ``rho_cap`` caps what
    one (unit, period) may spend in all (every metric, every re-release). ``delta`` is only used to
    report the spent budget as (epsilon, delta).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(default=5, ge=K_FLOOR)
    manager_k: int = Field(default=MANAGER_K, ge=K_FLOOR)
    rho_count: float = Field(default=0.05, gt=0, le=10)
    rho_sum: float = Field(default=0.1, gt=0, le=10)
    rho_cap: float = Field(default=1.0, gt=0, le=100)
    delta: float = Field(default=1e-6, gt=0, lt=1e-3)

    @model_validator(mode="after")
    def _consistent(self) -> ReleaseRules:
        if self.manager_k < self.k:
            raise ValueError("manager_k must not be below k")
        if self.rho_count + self.rho_sum > self.rho_cap:
            raise ValueError("one count and one sum must fit the per-(unit, period) budget")
        return self

    def for_manager(self) -> ReleaseRules:
        """The same rules with the managers' minimum group size."""
        return self.model_copy(update={"k": self.manager_k})
