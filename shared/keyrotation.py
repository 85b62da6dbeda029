"""Key rotation: ``kinwell keys rotate | rewrap | status``, for every encrypted column of a service.

Every encrypted column is sealed by the envelope of ``shared.crypto`` under a keyring
(``master_key`` or ``webhook_key``), and each blob names its key id. Rotation, per keyring:

1. ``kinwell keys rotate --keyring master_key``: a new key becomes current, the old one moves to
   the retired keys (``KINWELL_OLD_MASTER_KEYS``). Embedded mode rewrites ``dev-secrets.json``;
   production prints the new values for the operator's secret store (nothing is written).
2. Restart the services holding that keyring: new blobs are sealed with the new key, old blobs
   still open with the retired one.
3. ``kinwell keys rewrap --service <name>``: re-seals every blob of that service's database under
   the current key (and upgrades blobs written before the envelope). Batched, committed per
   batch, compare-and-set per row (a value changed meanwhile is left to its writer), idempotent.
4. ``kinwell keys status --service <name>`` answers 0 stale blobs: drop the retired key.

A service's encrypted columns are declared once, as :class:`SealedColumn` values: its own in
``services/<name>/keys.py`` (``SEALED_COLUMNS``), plus the webhook subscription secrets when the
service holds ``webhook_key`` (``shared.topology.SERVICE_SECRETS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import tuple_, update
from sqlmodel import Session, SQLModel, select

from shared.crypto import Keyring
from shared.datakeys import DataKey, MasterKeys
from shared.settings import ServiceSettings
from shared.topology import SERVICE_SECRETS


@dataclass(frozen=True)
class SealedColumn:
    """A column of envelope blobs and how to re-seal one row's value under the current key."""

    name: str
    keyring: str
    model: type[SQLModel]
    column: str
    primary_key: tuple[str, ...]
    # (keyring, row) -> the value re-sealed under the current key, or None if it already is.
    reseal: Callable[[Keyring, Any], Any]
    # Columns set beside the blob when it is re-sealed (e.g. the key id column, a timestamp).
    also_set: Callable[[Keyring], dict[str, Any]] = lambda keyring: {}


def rewrap_column(session: Session, spec: SealedColumn, keyring: Keyring, *, dry_run: bool, batch: int = 500) -> int:
    """Re-seal every stale blob of ``spec`` (or only count them, ``dry_run``); returns the count."""
    pk = [getattr(spec.model, name) for name in spec.primary_key]
    blob = getattr(spec.model, spec.column)
    stale, last = 0, None
    while True:
        query = select(spec.model).order_by(*pk).limit(batch)
        if last is not None:
            query = query.where(tuple_(*pk) > tuple_(*last))
        rows = list(session.exec(query))
        if not rows:
            return stale
        for row in rows:
            resealed = spec.reseal(keyring, row)
            if resealed is None:
                continue
            stale += 1
            if not dry_run:
                same_row = [column == getattr(row, name) for column, name in zip(pk, spec.primary_key, strict=True)]
                unchanged = blob == getattr(row, spec.column)  # compare-and-set: a newer write wins
                values = {spec.column: resealed, **spec.also_set(keyring)}
                stmt = update(spec.model).where(*same_row, unchanged).values(**values)
                # No ORM synchronisation: evaluating each update against the whole batch loaded in
                # the session made a rewrap quadratic in the batch size.
                session.exec(stmt.execution_options(synchronize_session=False))  # type: ignore[call-overload]
        session.commit()
        last = tuple(getattr(rows[-1], name) for name in spec.primary_key)


def sealed_columns(service: str) -> list[SealedColumn]:
    """Every encrypted column of ``service``'s database."""
    columns: list[SealedColumn] = []
    try:
        module = importlib.import_module(f"services.{service}.keys")
        columns += module.SEALED_COLUMNS
    except ModuleNotFoundError as exc:
        if exc.name != f"services.{service}.keys":
            raise
    if "webhook_key" in SERVICE_SECRETS[service]:
        from shared.webhooks.rotation import WEBHOOK_SECRETS

        columns.append(WEBHOOK_SECRETS)
    return columns


def service_settings(service: str) -> ServiceSettings:
    """The service's settings, read from the environment like the service itself reads them."""
    config = importlib.import_module(f"services.{service}.config")
    cls = next(
        v
        for v in vars(config).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    )
    settings: ServiceSettings = cls()
    return settings


def rewrap_service(service: str, settings: ServiceSettings, *, dry_run: bool = False) -> dict[str, int]:
    """Re-seal (or count, ``dry_run``) the stale blobs of every encrypted column; name -> count."""
    from shared.db import make_engine, run_migrations

    assert settings.database_url is not None
    run_migrations(settings.database_url, Path(__file__).resolve().parents[1] / "services" / service / "migrations")
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        counts: dict[str, int] = {}
        with Session(engine) as session:
            for spec in sealed_columns(service):
                keyring = settings.platform.keyring(spec.keyring)
                counts[spec.name] = rewrap_column(session, spec, keyring, dry_run=dry_run)
        return counts
    finally:
        engine.dispose()


_master = cache(MasterKeys.from_keyring)  # one per keyring: HKDF once, not per row


def _wrapped_data_key(keyring: Keyring, row: Any) -> bytes | None:
    master = _master(keyring)
    return None if master.is_current(row) else master.wrap(master.unwrap(row), row.pseudonym, row.key_id)[1]


DATA_KEYS = SealedColumn(
    "data_key.wrapped",
    "master_key",
    DataKey,
    "wrapped",
    ("key_id",),
    _wrapped_data_key,
    lambda keyring: {"kek_id": keyring.current_id, "rewrapped_at": datetime.now(UTC)},
)
"""Subjects' wrapped data keys (``shared.datakeys``), in every service that keeps them."""


def next_key_id(current: str, taken: set[str]) -> str:
    """``k1`` -> ``k2``; any other id gets a number appended; never an id already in use."""
    stem, digits = current.rstrip("0123456789"), current[len(current.rstrip("0123456789")) :]
    n = int(digits) + 1 if digits else 2
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"[:16]


def rotate(keyring: str) -> tuple[str, str, dict[str, str]]:
    """Rotate ``keyring``: (new key id, new key, retired keys by id, the old current key added).

    Embedded mode writes them to ``dev-secrets.json``; production only returns them for the
    operator's secret store (this process cannot change another's environment).
    """
    import json

    from shared.settings import KEYRINGS, PlatformSettings, load_or_create_dev_secrets, new_secret, write_dev_secrets

    platform = PlatformSettings()
    id_field, old_field = KEYRINGS[keyring]
    current_id = getattr(platform, id_field)
    retired = {kid: key.get_secret_value() for kid, key in getattr(platform, old_field).items()}
    retired[current_id] = platform.secret(keyring).decode()
    new_id, new_key = next_key_id(current_id, set(retired)), new_secret()
    if platform.mode == "embedded":
        stored = load_or_create_dev_secrets(platform.data_dir)
        stored.update({keyring: new_key, id_field: new_id, old_field: json.dumps(retired)})
        write_dev_secrets(platform.data_dir, stored)
    return new_id, new_key, retired
