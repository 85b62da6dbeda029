"""Periodic work on check-ins (scheduled in ``app.py`` through ``shared.periodic.every``):
retention deletes check-ins older than ``retention_days``. (Their contributions are released by
``shared.contributions``, with the closed work-pattern weeks.)"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from services.checkin.checkins import repository as repo

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
