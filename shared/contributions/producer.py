"""The producer side of contributions: org units in, held contributions, shuffled release out.

A service builds one :class:`Producer` (its tables and its ``source``) and uses it for
everything: the HRIS consumers (:meth:`Producer.bindings`), holding contributions
(:meth:`Producer.hold`, or :meth:`Producer.rows` plus ``repository.insert_pending`` in a Core
batch), a retraction when ``aggregate_insights`` ends (:meth:`Producer.retract`), erasure and export
of the org-unit history, and the periodic release (:meth:`Producer.start_release`).

Consent stays with the caller, which asks its gate for :data:`PURPOSE` (its own rule: check-in
asks again in its writer, escalation wants a definite grant); no contribution is held without it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import Field, TypeAdapter
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.bus.outbox import OutboxMessage
from shared.contributions import repository as repo
from shared.contributions.rollup import roll_up
from shared.contributions.tables import ContributionTables
from shared.crypto import period_token
from shared.db import after_commit
from shared.events.consent import ConsentChange
from shared.events.contribution import ContributionRecorded, ContributionRetracted, Source
from shared.events.hris import HrisSubjectEvent, OrgUnitChanged, SubjectAssigned, SubjectLeft, opened
from shared.events.sealed import Keyring

PURPOSE = "aggregate_insights"
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
RELEASE_BATCH = 5000
_HELD: TypeAdapter[ContributionRecorded | ContributionRetracted] = TypeAdapter(
    Annotated[ContributionRecorded | ContributionRetracted, Field(discriminator="type")]
)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _monday(week: str) -> date:
    return date.fromisocalendar(int(week[:4]), int(week[6:]), 1)


@dataclass
class Draft:
    """One metric's value for a subject's week, before the producer knows the org unit."""

    metric: str
    value: float
    period_token: str


class Producer:
    def __init__(self, source: Source, *, assignments: str, pending: str, org_units: str) -> None:
        self.source: Source = source
        self.tables = ContributionTables.named(assignments, pending, org_units)

    # --- HRIS facts -------------------------------------------------------------------------------

    def on_subject(self, session: Session, event: SubjectAssigned | SubjectLeft) -> None:
        """Org unit history: a contribution names the unit in force at the start of its week."""
        unit = event.org_unit if isinstance(event, SubjectAssigned) else None
        repo.assign(session.connection(), self.tables, event.pseudonym, unit, event.effective_from)

    def on_org_unit(self, session: Session, event: OrgUnitChanged) -> None:
        active = event.state == "active"
        repo.put_org_unit(session.connection(), self.tables, event.org_unit, event.parent, active, event.effective_from)

    def bindings(self, event_keys: Keyring) -> list[Any]:
        """The two HRIS consumers every producer runs (topology: ``hris.subject.>``, ``hris.org.>``);
        v2 subject facts are opened with the subject's event key (none: erased, dropped)."""
        from shared.app import ConsumerBinding  # shared.app imports the bus, which imports events

        return [
            ConsumerBinding("hris.subject.>", TypeAdapter(HrisSubjectEvent), opened(event_keys, self.on_subject)),
            ConsumerBinding("hris.org.>", TypeAdapter(OrgUnitChanged), self.on_org_unit),
        ]

    def unit_on(self, session: Session, pseudonym: str, day: date) -> str | None:
        return repo.units_at(session.connection(), self.tables, [pseudonym], day).get(pseudonym)

    def erase(self, session: Session, pseudonym: str) -> int:
        return repo.delete_assignments_of(session.connection(), self.tables, pseudonym)

    def export(self, session: Session, pseudonym: str) -> list[dict[str, Any]]:
        return [
            {"org_unit": a.org_unit, "effective_from": a.effective_from.isoformat()}
            for a in repo.assignments_of(session.connection(), self.tables, pseudonym)
        ]

    # --- holding ----------------------------------------------------------------------------------

    def rows(self, org_unit: str, week: str, drafts: Iterable[Draft], *, once: bool = False) -> list[dict[str, Any]]:
        """Pending rows of ``drafts`` (no consent check: the caller's). ``once``: the event id is
        derived from token and metric, so a counter counts a subject once a week end to end (the
        aggregator keeps one id once)."""
        out = []
        for d in drafts:
            ids = {"event_id": uuid5(NAMESPACE_URL, f"kinwell:{d.period_token}:{d.metric}")} if once else {}
            event = ContributionRecorded(
                **ids,
                source=self.source,
                org_unit=org_unit,
                iso_week=week,
                metric=d.metric,  # type: ignore[arg-type]
                value=d.value,
                period_token=d.period_token,
            )
            out.append(self._row(event, d.period_token))
        return out

    def hold(
        self,
        session: Session,
        period_key: bytes,
        pseudonym: str,
        day: date,
        values: Iterable[tuple[str, float]],
        *,
        once: bool = False,
    ) -> bool:
        """Hold ``values`` of the subject's week of ``day``; False when HRIS has not placed them."""
        conn, week = session.connection(), iso_week(day)
        unit = self.unit_on(session, pseudonym, week_start(day))
        if unit is None:
            return False
        token = period_token(period_key, pseudonym, week)
        rows = self.rows(unit, week, (Draft(m, v, token) for m, v in values), once=once)
        repo.insert_pending(
            conn, self.tables, [r for r in rows if not (once and repo.pending_has(conn, self.tables, r["msg_id"]))]
        )
        return True

    def retract(self, session: Session, period_key: bytes, pseudonym: str, day: date) -> None:
        """``aggregate_insights`` ended on ``day``: drop the week's held contributions and hold a
        retraction of its token, for the aggregator to drop what it already has."""
        week = iso_week(day)
        token = period_token(period_key, pseudonym, week)
        repo.delete_pending_for_token(session.connection(), self.tables, token)
        unit = self.unit_on(session, pseudonym, week_start(day))
        if unit is not None:
            event = ContributionRetracted(source=self.source, org_unit=unit, iso_week=week, period_token=token)
            repo.insert_pending(session.connection(), self.tables, [self._row(event, token)])

    def on_consent_changed(self, session: Session, period_key: bytes, event: ConsentChange) -> None:
        """``aggregate_insights`` withdrawn or lapsed: :meth:`retract` the week it happened in (for
        an erased subject, the week the change is handled in: its time was sealed)."""
        if event.purpose == PURPOSE and event.ended:
            self.retract(session, period_key, event.pseudonym, event.changed_at.astimezone(UTC).date())

    @staticmethod
    def _row(event: ContributionRecorded | ContributionRetracted, token: str) -> dict[str, Any]:
        return {
            "msg_id": str(event.event_id),
            "period_token": token,
            "subject": event.subject,
            "payload": event.model_dump_json().encode(),
        }

    # --- release ----------------------------------------------------------------------------------

    def release(self, session: Session, k: int, notify: Callable[[], None]) -> int:
        """Move held contributions to the outbox in random order, each under the unit the roll-up
        allows (dropped when none); no trace headers. Returns how many were published."""
        conn = session.connection()
        held = repo.take_pending(conn, self.tables, RELEASE_BATCH)
        if not held:
            return 0
        events = [_HELD.validate_json(bytes(row.payload)) for row in held]
        tree = repo.parents(conn, self.tables)
        allowed = {
            week: roll_up(repo.members_on(conn, self.tables, _monday(week)), tree, k)
            for week in {e.iso_week for e in events}
        }
        out = []
        for event in events:
            unit = allowed[event.iso_week].get(event.org_unit)
            if unit is None:
                continue  # no unit with k members above it: held back for good
            if unit != event.org_unit:
                event = event.model_copy(update={"org_unit": unit})
            out.append(event)
        secrets.SystemRandom().shuffle(out)
        now = datetime.now(UTC)
        # One Core executemany (an ORM object per row was most of a 5000-row release); headers
        # "{}": a trace id would link the figure to a request.
        rows = [
            {"msg_id": str(e.event_id), "subject": e.subject, "payload": e.model_dump_json().encode(),
             "headers": "{}", "created_at": now, "attempts": 0}
            for e in out
        ]  # fmt: skip
        if rows:
            conn.execute(insert(OUTBOX), rows)
        repo.delete_pending(conn, self.tables, [row.msg_id for row in held])
        if out:
            after_commit(session, notify)
        return len(out)

    def start_release(self, rt: Any, seconds: float, k: int, *, before: Callable[[Session], int] | None = None) -> None:
        """Release every ``seconds`` through ``shared.periodic.every`` (any replica; rows are
        locked), one transaction per run; ``before`` runs first in the same transaction."""
        from shared.periodic import every

        engine: Engine = rt.engine

        def job() -> int:
            with Session(engine, expire_on_commit=False) as session:
                done = before(session) if before is not None else 0
                done += self.release(session, k, rt.relay.notify)
                session.commit()
            return done

        rt.tasks.append(every(seconds, job, name=f"{self.source}-contributions"))
