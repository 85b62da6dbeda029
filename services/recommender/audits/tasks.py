"""Scheduled fairness audits: when an ISO week has ended, release its report for every
configured attribute (once: a released report is never re-drawn)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from services.recommender.audits import service
from services.recommender.columns import utcnow
from services.recommender.config import RecommenderSettings
from shared.db import after_commit, session_scope


def release_ended_week(
    engine: Engine, settings: RecommenderSettings, notify: Callable[[], None], now: datetime | None = None
) -> int:
    """Reports released for last week; returns how many."""
    week = service.iso_week((now or utcnow()) - timedelta(days=7))
    released = 0
    for attribute in sorted(settings.fairness_attributes):
        with contextmanager(session_scope)(engine) as session:
            report = service.run(session, week, attribute, settings)
            if report is not None:
                released += 1
                after_commit(session, notify)
    return released
