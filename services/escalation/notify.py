"""What the escalation service tells systems outside the platform (an on-call tool, a crisis service).

:func:`notify` is called inside the transaction that changes the case, so a rolled-back change pages
nobody. A page names a case, its severity, its ladder step and the console link, never a person or
anything they wrote; the case's pseudonym goes in as ``subject`` so that erasure also deletes the
pages still queued about them (the pseudonym itself is never sent). Such deliveries reach only
subscriptions that name the event type explicitly.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from shared.webhooks import enqueue

PAGE_TRIGGERED = "escalation.page.triggered"
PAGE_RESOLVED = "escalation.page.resolved"
PAGE_EXTERNAL = "escalation.page.external"  # the final rule: the external crisis service
EVENT_TYPES = frozenset({PAGE_TRIGGERED, PAGE_RESOLVED, PAGE_EXTERNAL})


def notify(session: Session, event_type: str, payload: dict[str, Any], *, subject: str | None = None) -> list[str]:
    """Queue ``payload`` for every subscription to ``event_type``; returns the webhook ids."""
    if event_type not in EVENT_TYPES:
        raise ValueError("not an event type the escalation service sends")
    return enqueue(session, event_type, payload, subject=subject)
