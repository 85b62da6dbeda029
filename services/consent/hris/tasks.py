"""Forget processed HRIS webhook ids past their retention (``shared.periodic.every``)."""

from __future__ import annotations

from contextlib import contextmanager

from services.consent.config import ConsentSettings
from services.consent.hris import service as hris
from shared.app import Runtime
from shared.db import session_scope
from shared.periodic import every


async def start_hris_purge(rt: Runtime) -> None:
    """Forget processed HRIS webhook ids past their retention, hourly (any replica may run it)."""
    settings = rt.settings
    assert isinstance(settings, ConsentSettings)

    def purge() -> int:
        with contextmanager(session_scope)(rt.engine) as session:
            return hris.purge_webhook_ids(session, settings.hris_webhook_id_retention_days)

    rt.tasks.append(every(3600, purge, name="consent-hris-webhook-id-purge"))
