"""The one scheduler: runs on its interval, survives a failing run, counts outcomes."""

from __future__ import annotations

import asyncio

import pytest

from shared.periodic import JOB_RUNS, every, run_once


def _runs(job: str, outcome: str) -> float:
    return JOB_RUNS.labels(job, outcome)._value.get()


def test_a_failing_run_is_counted_and_the_schedule_goes_on() -> None:
    calls: list[int] = []

    def job() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        return 2

    async def main() -> None:
        task = every(0.01, job, name="test-failing")
        while len(calls) < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert _runs("test-failing", "failed") == 1
    assert _runs("test-failing", "ok") >= 2


def test_coroutine_jobs_and_initial_delay() -> None:
    seen: list[float] = []

    async def job() -> None:
        seen.append(asyncio.get_running_loop().time())

    async def main() -> float:
        start = asyncio.get_running_loop().time()
        task = every(10, job, name="test-delay", initial_delay=0.05)
        while not seen:
            await asyncio.sleep(0.005)
        task.cancel()
        return start

    start = asyncio.run(main())
    assert seen[0] - start >= 0.05
    assert len(seen) == 1  # the second run waits the whole interval


def test_run_once_returns_what_the_job_did_and_none_on_failure() -> None:
    def boom() -> int:
        raise ValueError("x")

    assert asyncio.run(run_once("test-once", lambda: 3)) == 3
    assert asyncio.run(run_once("test-once", boom)) is None


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        every(0, lambda: None, name="never")
