"""Assembly of the checkin service.

Until its own issue lands it serves health, readiness and metrics, answers data-subject export
and access-log requests with what it holds (nothing yet), and acknowledges erasure requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlmodel import Session

from services.checkin.config import CheckinSettings
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.service_kit import erasure_binding

NAME = "checkin"


def _erase(session: Session, pseudonym: str) -> int:
    return 0  # holds no subject data yet


def _export(session: Session, pseudonym: str) -> dict[str, Any]:
    return {}


def build_spec() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        title="Kinwell checkin",
        description="Validated check-ins, risk screening, encryption with crypto-shredding, nudges.",
        migrations=Path(__file__).parent / "migrations",
        consumers=lambda rt: [erasure_binding(NAME, _erase)],
        export=_export,
        access_log=_export,
        uses_gate=True,
    )


def create_app(settings: CheckinSettings | None = None) -> FastAPI:
    return create_service_app(build_spec(), settings or CheckinSettings())


__all__ = ["Runtime", "build_spec", "create_app"]
