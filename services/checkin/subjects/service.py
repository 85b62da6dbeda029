"""Subject rights and consent: erasure, export, and what a withdrawal deletes.

These run in consumer and responder transactions (``shared.bus.consumer``, ``shared.app``): they
never commit; the caller commits with its idempotency record, or rolls everything back.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from services.checkin.checkins import repository as repo
from services.checkin.checkins import service as checkins_service
from services.checkin.clock import aware
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.nudges import repository as nudges_repo
from services.checkin.signals import repository as signals_repo
from shared import audit
from shared.datakeys import DataKeyStore
from shared.events.consent import ConsentChange, Purpose


def erase(session: Session, keys: DataKeyStore, pseudonym: str) -> int:
    """Delete everything held about the subject and destroy their data key; returns rows deleted.

    Destroying the key is what makes copies elsewhere (stream payloads such as a shared note,
    backups of deleted rows) unreadable: crypto-shredding.
    """
    removed = repo.delete_checkins_of(session, pseudonym)
    removed += nudges_repo.delete_nudge(session, pseudonym)
    removed += CONTRIBUTIONS.erase(session, pseudonym)
    removed += signals_repo.delete_of(session, pseudonym)
    removed += keys.destroy(session, pseudonym)
    return removed


def export(session: Session, keys: DataKeyStore, pseudonym: str) -> dict[str, Any]:
    """What the service holds about the subject, opened (the reply to consent's export request)."""
    checkins = checkins_service.history(session, keys, pseudonym)
    nudge = nudges_repo.get_nudge(session, pseudonym)
    audit.append(
        session, actor="consent", actor_role="service", subject=pseudonym, action="checkin.export", purpose="access"
    )
    return {
        "checkins": [c.model_dump(mode="json") for c in checkins],
        "nudge": None
        if nudge is None
        else {
            "weekday": nudge.weekday,
            "time": nudge.local_time.isoformat(timespec="minutes"),
            "timezone": nudge.timezone,
            "quiet_start": nudge.quiet_start.isoformat(timespec="minutes") if nudge.quiet_start else None,
            "quiet_end": nudge.quiet_end.isoformat(timespec="minutes") if nudge.quiet_end else None,
            "snooze_until": aware(nudge.snooze_until).isoformat() if nudge.snooze_until else None,
            "next_due": aware(nudge.next_due).isoformat(),
        },
        "org_assignments": CONTRIBUTIONS.export(session, pseudonym),
        "work_pattern_signals": [
            {"date": d.day.isoformat(), **{f: getattr(d, f) for f in signals_repo.FEATURES}}
            for d in signals_repo.days_of(session, pseudonym)
        ],
    }


def on_consent_changed(session: Session, period_key: bytes, event: ConsentChange) -> None:
    """Withdrawal (or lapse) deletes what was held only for that purpose.

    * ``checkin`` withdrawn: check-ins, their trend and the nudge schedule; lapsed (a new policy
      version, not the employee's choice): the nudge schedule only, history waits for re-consent
      or retention. Either way the gate has already stopped new check-ins and nudges.
    * ``aggregate_insights``: contributions of this week not yet released are dropped, and a
      retraction of this week's token is released, for the aggregator to drop what it holds.
    * ``work_patterns`` withdrawn or lapsed: the stored signal days (held for that purpose only);
      the gate already drops new records at the door and keeps the subject out of weekly closing.
    """
    if event.state == "granted":
        return
    pseudonym = event.pseudonym
    if event.purpose == Purpose.checkin:
        nudges_repo.delete_nudge(session, pseudonym)
        if event.state == "withdrawn":
            repo.delete_checkins_of(session, pseudonym)
    elif event.purpose == Purpose.work_patterns:
        signals_repo.delete_of(session, pseudonym)
    else:
        CONTRIBUTIONS.on_consent_changed(session, period_key, event)  # aggregate_insights
