"""The aggregator's clock: real time, shifted only in embedded mode (``kinwell demo`` backdates).

``KINWELL_AGGREGATOR_CLOCK_OFFSET_DAYS`` moves "now" for releases; production settings refuse any
offset (``config.py``), so a deployed aggregator always releases on real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, offset_days: int = 0) -> None:
        self.offset = timedelta(days=offset_days)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset
