"""What the aggregator tells systems outside the platform, through the outbound webhook sender.

The aggregator's own issue decides when and with what figures; this module fixes the event types
admins can subscribe to, and the one way to send them: :func:`notify`, called inside the
transaction that releases the figures, so a rolled-back release sends nothing. Payloads carry only
what is already released (k-anonymous, noised): never a contribution, a token or a pseudonym.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from shared.webhooks import enqueue

ROLLUP_PUBLISHED = "aggregate.rollup.published"
INSIGHT_PUBLISHED = "aggregate.insight.published"
FORECAST_PUBLISHED = "aggregate.forecast.published"
EVENT_TYPES = frozenset({ROLLUP_PUBLISHED, INSIGHT_PUBLISHED, FORECAST_PUBLISHED})


def notify(session: Session, event_type: str, payload: dict[str, Any]) -> list[str]:
    """Queue ``payload`` for every subscription to ``event_type``; returns the webhook ids."""
    if event_type not in EVENT_TYPES:
        raise ValueError("not an event type the aggregator sends")
    return enqueue(session, event_type, payload)
