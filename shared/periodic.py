"""The one scheduler: periodic work in a service runs through ``every``.

A job is a plain function (run in a worker thread, since most jobs are database work) or a
coroutine function. It returns how much it did (an ``int``, or ``None``); a failure is logged by
exception type only, counted, and retried at the next interval, so one bad round never ends the
schedule. Intervals are measured from the end of one run to the start of the next: a slow run
delays the next one instead of piling runs up.

The caller keeps the returned task (``rt.tasks``) so the service cancels it at shutdown. Jobs that
must not run twice at once across replicas take their own row locks; the scheduler makes no
cross-process promise.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from shared.telemetry import REGISTRY

log = logging.getLogger("kinwell.periodic")

JOB_RUNS = Counter(
    "kinwell_periodic_runs_total",
    "Runs of periodic jobs, by job name and outcome (ok, failed)",
    ["job", "outcome"],
    registry=REGISTRY,
)

Job = Callable[[], int | None] | Callable[[], Awaitable[int | None]]


async def run_once(name: str, job: Job) -> int | None:
    """One run of ``job``: counted, failures logged by type and swallowed (returns ``None``)."""
    try:
        if inspect.iscoroutinefunction(job):
            done = await job()
        else:
            done = await asyncio.to_thread(job)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - keep the schedule alive; retried next interval
        JOB_RUNS.labels(name, "failed").inc()
        log.warning("periodic job failed", extra={"outcome": name, "error_type": type(exc).__name__})
        return None
    JOB_RUNS.labels(name, "ok").inc()
    if done:
        log.info("periodic job ran", extra={"outcome": name, "count": done})
    return done  # type: ignore[return-value]


def every(seconds: float, job: Job, *, name: str, initial_delay: float = 0.0) -> asyncio.Task[Any]:
    """Run ``job`` now (or after ``initial_delay``) and then every ``seconds`` until cancelled."""
    if seconds <= 0:
        raise ValueError("a periodic job needs a positive interval")

    async def loop() -> None:
        if initial_delay > 0:
            await asyncio.sleep(initial_delay)
        while True:
            await run_once(name, job)
            await asyncio.sleep(seconds)

    return asyncio.create_task(loop(), name=f"periodic-{name}")
