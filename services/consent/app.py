"""Assembly of the consent service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.consent.config import ConsentSettings
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.topology import KV_BUCKET

NAME = "consent"


async def ensure_kv_bucket(rt: Runtime) -> None:
    """The consent KV bucket (declared by the provisioner) must exist before we write to it."""
    await rt.bus.js.key_value(KV_BUCKET)


def build_spec() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        title="Kinwell consent",
        description="Purposes, consent records and receipts, the subject directory, data-subject requests.",
        migrations=Path(__file__).parent / "migrations",
        on_start=[ensure_kv_bucket],
    )


def create_app(settings: ConsentSettings | None = None) -> FastAPI:
    return create_service_app(build_spec(), settings or ConsentSettings())
