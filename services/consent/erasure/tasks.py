"""Re-publish erasure requests still missing acknowledgements (``shared.periodic.every``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import contextmanager

from services.consent.config import ConsentSettings
from services.consent.deps import ConsentContext
from services.consent.erasure import service as erasure
from shared.app import Runtime
from shared.db import session_scope
from shared.periodic import every


def start_erasure_retries(ctx: ConsentContext) -> Callable[[Runtime], Awaitable[None]]:
    return lambda rt: _start_erasure_retries(rt, ctx)


async def _start_erasure_retries(rt: Runtime, ctx: ConsentContext) -> None:
    """Re-publish erasure requests that are still missing acknowledgements (state is in the
    database, so this resumes after a restart; every replica may run it, rows are locked)."""
    settings = rt.settings
    assert isinstance(settings, ConsentSettings)

    def resend() -> int:
        with contextmanager(session_scope)(rt.engine) as session:
            return erasure.resend_stale(session, settings.erasure_retry_after_seconds, ctx)

    interval = settings.erasure_retry_check_seconds
    rt.tasks.append(every(interval, resend, name="consent-erasure-retries", initial_delay=interval))
