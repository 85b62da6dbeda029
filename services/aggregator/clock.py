"""The aggregator's clock: real time, shifted only in embedded mode (``kinwell demo`` backdates).

It follows the demo clock (``shared.clock``: ``KINWELL_DEMO_CLOCK``, which ``kinwell demo`` moves),
and ``KINWELL_AGGREGATOR_CLOCK_OFFSET_DAYS`` adds a fixed offset; production refuses both
(``config.py``, ``shared.clock.refuse_in_production``), so a deployed aggregator always releases
on real time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared import clock


class Clock:
    def __init__(self, offset_days: int = 0) -> None:
        self.offset = timedelta(days=offset_days)

    def now(self) -> datetime:
        return clock.now() + self.offset
