"""Assembly of the consent service."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from nats.js.api import KeyValueConfig, StorageType

from services.consent.config import ConsentSettings
from shared.app import Runtime, ServiceSpec, create_service_app
from shared.topology import KV_BUCKET

NAME = "consent"


async def ensure_kv_bucket(rt: Runtime) -> None:
    """The consent KV bucket: one value per key (current state), written only by this service."""
    await rt.bus.js.create_key_value(
        KeyValueConfig(
            bucket=KV_BUCKET,
            history=1,
            storage=StorageType.FILE,
            replicas=rt.bus.replicas,
            description="Current consent per <pseudonym>.<purpose>",
        )
    )


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
