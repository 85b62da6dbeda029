"""A resource as ranking sees it: immutable, shared between requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.recommender.catalogue.schemas import PROFESSIONAL_KINDS


@dataclass(frozen=True)
class Entry:
    """A resource as ranking sees it (immutable, shared between requests)."""

    id: str
    kind: str
    format: str
    topics: tuple[str, ...]
    duration_minutes: int
    countries: frozenset[str]
    role_families: frozenset[str]
    versions: dict[str, dict[str, Any]]

    @property
    def professional_help(self) -> bool:
        return self.kind in PROFESSIONAL_KINDS

    def reaches(self, country: str | None, role_family: str | None) -> bool:
        """Audience constraints: a country- or role-limited resource needs a known match."""
        if self.countries and country not in self.countries:
            return False
        return not self.role_families or role_family in self.role_families
