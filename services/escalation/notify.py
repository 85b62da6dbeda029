"""What the escalation service tells systems outside the platform (an on-call or paging tool).

The escalation issue decides when a page is raised and what it says; this module fixes the event
types admins can subscribe to, and the one way to send them: :func:`notify`, called inside the
transaction that changes the case, so a rolled-back change pages nobody. A page names a case, never
a person or anything they wrote; pass the case's pseudonym as ``subject`` so that erasure also
deletes the pages still queued about them (the pseudonym itself is never sent).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from shared.webhooks import enqueue

PAGE_TRIGGERED = "escalation.page.triggered"
PAGE_RESOLVED = "escalation.page.resolved"
EVENT_TYPES = frozenset({PAGE_TRIGGERED, PAGE_RESOLVED})


def notify(session: Session, event_type: str, payload: dict[str, Any], *, subject: str | None = None) -> list[str]:
    """Queue ``payload`` for every subscription to ``event_type``; returns the webhook ids."""
    if event_type not in EVENT_TYPES:
        raise ValueError("not an event type the escalation service sends")
    return enqueue(session, event_type, payload, subject=subject)
