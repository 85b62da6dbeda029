"""The periodic release of closed weeks, through the one scheduler."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from services.aggregator.clock import Clock
from services.aggregator.config import AggregatorSettings
from services.aggregator.releases import service
from shared.app import Runtime
from shared.db import session_scope
from shared.periodic import every

unit_of_work = contextmanager(session_scope)


def release_job(rt: Runtime, settings: AggregatorSettings, clock: Clock) -> int:
    with unit_of_work(rt.engine) as session:
        released = service.release_due(session, clock.now(), timedelta(hours=settings.grace_hours), settings.release)
    return len(released)


def start(rt: Runtime, settings: AggregatorSettings, clock: Clock) -> list[asyncio.Task[Any]]:
    return [every(settings.release_check_seconds, lambda: release_job(rt, settings, clock), name="aggregator-release")]
