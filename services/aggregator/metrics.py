"""Which way each reported metric gets worse, for the drop, drift and forecast detectors."""

from __future__ import annotations

LOWER_IS_WORSE = {"who5_index": True, "mood": True, "focus_hours_per_day": True}


def adverse(metric: str) -> int:
    """-1 where lower is worse (WHO-5, mood, focus hours), +1 where higher is worse."""
    return -1 if LOWER_IS_WORSE.get(metric, False) else 1
