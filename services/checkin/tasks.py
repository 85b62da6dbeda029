"""Scheduled work, started by ``on_start`` once the bus and the consent gate are up.

* nudges: every ``nudge_interval_seconds``, send what is due (``nudges.run_due``) as webhooks;
* retention: every ``retention_interval_seconds``, delete check-ins older than ``retention_days``;
* contributions: every ``contribution_release_seconds``, close every ISO week of work-pattern
  signals whose time has come (``signals_weekly.close_weeks``), then release the held-back
  contributions (and retractions) through ``shared.contributions``: one shuffled batch, no trace
  headers, tiny units rolled up to an ancestor with k members.

Each run is one transaction in a worker thread, scheduled by ``shared.periodic.every`` (which
logs a failed run by type only and retries it at the next interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.checkin import nudges, signals_weekly
from services.checkin import repository as repo
from services.checkin.clock import utcnow
from services.checkin.config import CheckinSettings
from services.checkin.models import CONTRIBUTIONS
from shared.periodic import every

log = logging.getLogger("kinwell.checkin.tasks")


def purge_expired(session: Session, retention_days: int, now: datetime | None = None) -> int:
    """Delete raw check-ins older than the retention period (in chunks); returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    removed = 0
    while True:
        chunk = repo.purge_checkins_before(session, cutoff)
        removed += chunk
        if chunk == 0:
            return removed
        session.flush()


def _in_transaction(engine: Engine, work: Callable[[Session], int]) -> Callable[[], int]:
    """``work`` as a periodic job: one transaction per run, rolled back when it fails."""

    def run() -> int:
        with Session(engine, expire_on_commit=False) as session:
            try:
                done = work(session)
                session.commit()
                return done
            except BaseException:
                session.rollback()
                raise

    return run


def start_tasks(rt: Any, settings: CheckinSettings) -> list[asyncio.Task[None]]:
    """Create the three loops on the running event loop; ``rt.tasks`` cancels them at shutdown."""
    grace = timedelta(hours=settings.nudge_grace_hours)
    send = nudges.webhook_sender(nudges.handle_key(settings.platform))

    def due(session: Session) -> int:
        return nudges.run_due(session, rt.gate, datetime.now(UTC), grace=grace, send=send)

    def retention(session: Session) -> int:
        return purge_expired(session, settings.retention_days)

    def release(session: Session) -> int:
        period_key, close_hours = settings.platform.secret("period_key"), settings.signals_close_hours
        closed = signals_weekly.close_weeks(session, rt.gate, period_key, close_hours, utcnow(), rt.relay.notify)
        return closed + CONTRIBUTIONS.release(session, settings.platform.k_anonymity, rt.relay.notify)

    return [
        every(settings.nudge_interval_seconds, _in_transaction(rt.engine, due), name="checkin-nudges"),
        every(settings.retention_interval_seconds, _in_transaction(rt.engine, retention), name="checkin-retention"),
        every(settings.contribution_release_seconds, _in_transaction(rt.engine, release), name="checkin-contributions"),
    ]
