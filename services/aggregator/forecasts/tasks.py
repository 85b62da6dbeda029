"""The periodic forecast job (score passed forecasts, assess upcoming triggers), one scheduler."""

from __future__ import annotations

import asyncio
from typing import Any

from services.aggregator.clock import Clock
from services.aggregator.config import AggregatorSettings
from services.aggregator.forecasts import service
from services.aggregator.insights import playbook
from services.aggregator.releases.tasks import unit_of_work
from shared.app import Runtime
from shared.periodic import every


def forecast_job(rt: Runtime, settings: AggregatorSettings, clock: Clock) -> int:
    with unit_of_work(rt.engine) as session:
        return service.run(session, clock.now(), playbook.load(settings.playbook_path))


def start(rt: Runtime, settings: AggregatorSettings, clock: Clock) -> list[asyncio.Task[Any]]:
    return [
        every(settings.forecast_check_seconds, lambda: forecast_job(rt, settings, clock), name="aggregator-forecast")
    ]
