"""Release held-back SLA contributions in one shuffled batch, with no trace headers."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from services.escalation.sla import repository as repo
from shared.bus.outbox import OutboxMessage
from shared.db import after_commit
from shared.periodic import every

RELEASE_BATCH = 5000


def release(session: Session, notify: Any) -> int:
    rows = repo.take_pending(session, RELEASE_BATCH)
    if not rows:
        return 0
    secrets.SystemRandom().shuffle(rows)
    now = datetime.now(UTC)
    for row in rows:  # headers "{}": a trace id would link the figure to the case's request
        session.add(
            OutboxMessage(
                msg_id=row.msg_id, subject=row.subject, payload=bytes(row.payload), headers="{}", created_at=now
            )
        )
    repo.delete_pending(session, [row.msg_id for row in rows])
    after_commit(session, notify)
    return len(rows)


async def start_release(rt: Any) -> None:
    """``on_start``: release every ``sla_release_seconds`` (any replica; rows are locked)."""

    def job() -> int:
        with Session(rt.engine) as session:
            done = release(session, rt.relay.notify)
            session.commit()
        return done

    rt.tasks.append(every(float(rt.settings.sla_release_seconds), job, name="escalation-sla-release"))
