"""The timer poll: fire due ladder timers, through the one scheduler (``shared.periodic``).

``fire_due(engine, now)`` takes the current time as an argument so tests drive a fake clock. Each
timer is fired in a transaction of its own, locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so replicas share the work without firing one timer twice, and one broken case never holds up
the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.escalation.cases import repository as cases_repo
from services.escalation.ladder import repository as repo
from services.escalation.ladder.service import fire
from shared.periodic import every
from shared.telemetry import REGISTRY

if TYPE_CHECKING:
    from shared.app import Runtime

TIMERS_FIRED = Counter(
    "kinwell_escalation_timers_total", "Ladder timers fired, by outcome", ["outcome"], registry=REGISTRY
)


def fire_due(engine: Engine, now: datetime, console_url: str, limit: int = 100) -> int:
    """Fire every timer due at ``now`` (up to ``limit``); returns how many pages or re-escalations."""
    with Session(engine) as session:
        due = repo.due_timers(session, now, limit)
    done = 0
    for timer_id, case_id in due:
        with Session(engine, expire_on_commit=False) as session:
            # Case first, then timer: the order every case change takes, so no two transactions
            # wait on each other. Either lock held elsewhere: another replica has it, skip.
            case = cases_repo.lock_case(session, case_id, skip_locked=True)
            timer = repo.lock_timer(session, timer_id) if case is not None else None
            if case is None or timer is None:  # fired by another replica, cancelled meanwhile, or its case is busy
                session.rollback()
                continue
            outcome = fire(session, timer, case, now, console_url)
            session.commit()
        TIMERS_FIRED.labels(outcome).inc()
        done += outcome != "stale"
    return done


def start_timer_poll(clock: Callable[[], datetime]) -> Callable[[Runtime], Awaitable[None]]:
    """An ``on_start`` hook polling due timers every ``timer_poll_seconds``."""

    async def on_start(rt: Runtime) -> None:
        settings = rt.settings
        interval = float(getattr(settings, "timer_poll_seconds", 1.0))
        console = str(getattr(settings, "console_url", ""))
        limit = int(getattr(settings, "timer_batch", 100))
        rt.tasks.append(every(interval, lambda: fire_due(rt.engine, clock(), console, limit), name="escalation-timers"))
        await asyncio.sleep(0)

    return on_start
