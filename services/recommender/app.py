"""Assembly of the recommender service.

Until its own issue lands it serves health, readiness and metrics, answers data-subject export
and access-log requests with what it holds (nothing yet), and acknowledges erasure requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.recommender.config import RecommenderSettings
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.service_kit import erasure_binding

NAME = "recommender"


def _erase(session: Session, pseudonym: str) -> int:
    return 0  # holds no subject data yet


def _export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {}


def build_spec() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        title="Kinwell recommender",
        description="Resources chosen for each employee, in their language, with the reason shown.",
        migrations=Path(__file__).parent / "migrations",
        consumers=lambda rt: [erasure_binding(NAME, _erase)],
        export=_export,
        uses_gate=True,
    )


def create_app(settings: RecommenderSettings | None = None) -> FastAPI:
    return create_service_app(build_spec(), settings or RecommenderSettings())


__all__ = ["Runtime", "build_spec", "create_app"]
