"""HRIS ingress rules: Kinwell HRIS events -> minimised state here and ``hris.*`` events out.

Everything runs in the caller's transaction (a webhook or an import batch) and never commits.
Each event is compared with what is stored: only a change is stored and published, so a retried
webhook under a new id, or the same snapshot imported again, changes nothing and publishes nothing.

* employee created/updated: an upsert keyed by pseudonym. A new org unit (or a new effective date
  given explicitly) publishes ``SubjectAssigned``; a changed role family, country or language is
  stored and, only while ``personalization`` is granted, published as ``PersonalizationProfile``.
  An update for an employee not seen before acts as a create. The manager id is never stored.
* employee left: every granted consent ends (``withdrawn``, reason ``left``: history, KV put and
  ``ConsentChangedV2``, so every gate denies), contact details are deleted, the profile is cleared
  and ``SubjectLeft`` is published. For an employee the platform has never seen: 422.
* org units: parent and state only (names are not kept); a move that would make a cycle is 422.
* triggers: published when new or changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from services.consent.clock import utcnow
from services.consent.consents import changes
from services.consent.consents import repository as consents_repo
from services.consent.deps import ConsentContext
from services.consent.directory import repository as directory_repo
from services.consent.directory import service as directory
from services.consent.hris import repository as repo
from services.consent.hris.models import HrisOrgUnit, HrisSubject, HrisTrigger
from services.consent.hris.profile import profile_event
from services.consent.hris.schemas import HrisImported, HrisWebhookAccepted
from shared.bus.outbox import stage
from shared.errors import NotFound, Unprocessable
from shared.events.base import Event
from shared.events.consent import Purpose
from shared.events.hris import ManagerScopeChanged, OrgUnitChanged, SubjectAssigned, SubjectLeft, sealed_for_the_bus
from shared.hris.adapters import VENDORS
from shared.hris.minimise import to_platform_events
from shared.hris.schema import (
    EmployeeCreated,
    EmployeeLeft,
    EmployeeUpdated,
    OrgUnitClosed,
    OrgUnitCreated,
    OrgUnitMoved,
    OrgUnitRenamed,
    TriggerAnnounced,
    load_json,
)
from shared.hris.snapshot import SnapshotError, iter_document
from shared.hris.verify import read_hris_webhook

log = logging.getLogger("kinwell.consent.hris")

LEFT_REASON = "left"
_PROFILE = ("role_family", "country", "language")


@dataclass
class Applied:
    """What a batch did: HRIS events read, platform events staged."""

    events: int = 0
    published: int = 0


def apply_events(session: Session, ctx: ConsentContext, events: list[Any], *, today: date | None = None) -> Applied:
    """Apply Kinwell HRIS events in order, staging the platform events they cause."""
    batch = _Batch.load(session, ctx, events, today or datetime.now(UTC).date())
    applied = Applied()
    out: list[Event] = []
    for index, event in enumerate(events):
        caused = batch.apply(event, index)
        out.extend(caused)
        applied.events += 1
        applied.published += len(caused)
    for platform_event in sealed_for_the_bus(ctx.event_keys, out):  # facts about a person: sealed
        stage(session, platform_event)
    session.flush()
    return applied


@dataclass
class _Batch:
    """One batch's view of the stored state, read in a few queries up front (not per event)."""

    session: Session
    ctx: ConsentContext
    day: date
    subjects: dict[str, HrisSubject | None]
    units: dict[str, HrisOrgUnit | None]
    personalization: set[str]

    @classmethod
    def load(cls, session: Session, ctx: ConsentContext, events: list[Any], day: date) -> _Batch:
        people: set[str] = set()
        units: set[str] = set()
        for event in events:
            match event:
                case EmployeeCreated(employee=e) | EmployeeUpdated(employee=e):
                    people.add(ctx.pseudonym(e.employee_id))
                case EmployeeLeft(employee_id=employee_id):
                    people.add(ctx.pseudonym(employee_id))
                case OrgUnitCreated(org_unit=u):
                    units.update(x for x in (u.org_unit_id, u.parent_id) if x)
                case OrgUnitMoved() | OrgUnitClosed():
                    units.add(event.org_unit_id)
        stored = repo.subjects_in(session, people)
        stored_units = repo.org_units_in(session, units)
        return cls(
            session,
            ctx,
            day,
            subjects={p: stored.get(p) for p in people},
            units={u: stored_units.get(u) for u in units},
            personalization=consents_repo.granted_among(session, people, Purpose.personalization.value),
        )

    def subject(self, pseudonym: str) -> HrisSubject | None:
        if pseudonym not in self.subjects:
            self.subjects[pseudonym] = repo.get_subject(self.session, pseudonym)
        return self.subjects[pseudonym]

    def unit(self, org_unit: str) -> HrisOrgUnit | None:
        if org_unit not in self.units:
            self.units[org_unit] = repo.get_org_unit(self.session, org_unit)
        return self.units[org_unit]

    def save(self, row: HrisSubject | HrisOrgUnit) -> None:
        if isinstance(row, HrisSubject):
            self.subjects[row.pseudonym] = row
        else:
            self.units[row.org_unit] = row
        repo.save(self.session, row)

    def apply(self, event: Any, index: int) -> list[Event]:
        session, day = self.session, self.day
        match event:
            case EmployeeCreated() | EmployeeUpdated():
                return _employee(self, event)
            case EmployeeLeft():
                return _left(self, event, index)
            case OrgUnitCreated(org_unit=unit, effective_from=effective):
                changed = _org_unit(self, unit.org_unit_id, unit.parent_id, "active", effective or day, index)
                return changed + _manager(self, unit.org_unit_id, unit.manager_id, effective or day)
            case OrgUnitMoved(org_unit_id=unit_id, parent_id=parent, effective_from=effective):
                return _org_unit(self, unit_id, parent, "active", effective or day, index)
            case OrgUnitClosed(org_unit_id=unit_id, closed_on=closed_on):
                return _org_unit(self, unit_id, None, "closed", closed_on or day, index)
            case OrgUnitRenamed():
                return []  # unit names are neither kept nor published
            case TriggerAnnounced():
                return _trigger(session, event, day)
        raise TypeError(f"not a Kinwell HRIS event: {type(event).__name__}")


def _employee(batch: _Batch, event: EmployeeCreated | EmployeeUpdated) -> list[Event]:
    employee = event.employee
    subject = batch.ctx.pseudonym(employee.employee_id)
    row = batch.subject(subject)
    out: list[Event] = []
    is_new = row is None
    row = row or HrisSubject(pseudonym=subject, updated_at=utcnow())
    rejoined = row.left_on is not None
    changed = is_new or rejoined
    row.left_on = None
    if employee.org_unit is not None:
        moved = rejoined or row.org_unit != employee.org_unit
        redated = employee.effective_from is not None and row.effective_from != employee.effective_from
        if moved or redated:
            row.org_unit, row.effective_from = employee.org_unit, employee.effective_from or batch.day
            out.append(SubjectAssigned(pseudonym=subject, org_unit=row.org_unit, effective_from=row.effective_from))
            changed = True
    profile_changed = False
    for name in _PROFILE:
        value = getattr(employee, name)
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            profile_changed = True
    if profile_changed and subject in batch.personalization:
        profile = profile_event(row)
        if profile is not None:
            out.append(profile)
    if changed or profile_changed:
        row.updated_at = utcnow()
        batch.save(row)
    return out


def _left(batch: _Batch, event: EmployeeLeft, index: int) -> list[Event]:
    session = batch.session
    subject = batch.ctx.pseudonym(event.employee_id)
    row = batch.subject(subject)
    known_here = directory_repo.in_directory(session, subject)
    if row is None and not known_here:
        raise Unprocessable(
            "An employee.left event names an employee the platform does not know.",
            code="unknown-employee",
            errors=[{"loc": ["events", str(index)], "type": "unknown_employee"}],
        )
    if known_here:
        # Every granted consent ends through the same path as a withdrawal (reason ``left``, no
        # receipt: the employee did not act); contact details, held only for escalation, go.
        directory.enter_subject(session, batch.ctx, event.employee_id)  # locks the subject like any change
        changes.end_granted(session, batch.ctx.event_keys, subject, LEFT_REASON, utcnow())
        directory_repo.delete_contact(session, subject)
        batch.personalization.discard(subject)
    if row is not None and row.left_on is not None:
        return []  # already left: consents were ended then (and again above, should any be new)
    left_on = event.left_on or batch.day
    row = row or HrisSubject(pseudonym=subject, updated_at=utcnow())
    row.org_unit, row.effective_from, row.left_on = None, left_on, left_on
    row.role_family = row.country = row.language = None
    row.updated_at = utcnow()
    batch.save(row)
    return [SubjectLeft(pseudonym=subject, effective_from=left_on)]


def _org_unit(batch: _Batch, unit_id: str, parent: str | None, state: str, effective: date, index: int) -> list[Event]:
    row = batch.unit(unit_id)
    if row is not None and state == "closed":
        parent = row.parent  # the tree stays as it was; the unit is simply closed
    if row is not None and row.parent == parent and row.state == state:
        return []
    if state == "active" and parent is not None and _makes_cycle(batch, unit_id, parent):
        raise Unprocessable(
            "The org unit move would make the org tree a cycle.",
            code="org-cycle",
            errors=[{"loc": ["events", str(index)], "type": "org_cycle"}],
        )
    row = row or HrisOrgUnit(org_unit=unit_id, state=state, effective_from=effective, updated_at=utcnow())
    row.parent, row.state, row.effective_from, row.updated_at = parent, state, effective, utcnow()
    batch.save(row)
    published_parent = parent if state == "active" else None
    return [OrgUnitChanged(org_unit=unit_id, parent=published_parent, state=state, effective_from=effective)]  # type: ignore[arg-type]


def _manager(batch: _Batch, unit_id: str, manager_id: str | None, effective: date) -> list[Event]:
    """A unit's manager changed: republish the scope of the new and of the former manager."""
    row = batch.unit(unit_id)
    ref = batch.ctx.manager_ref(manager_id) if manager_id else None
    if row is None or row.manager_ref == ref:
        return []
    former, row.manager_ref = row.manager_ref, ref
    batch.save(row)
    batch.session.flush()
    return [
        ManagerScopeChanged(
            manager_ref=who, org_units=repo.units_managed_by(batch.session, who), effective_from=effective
        )
        for who in (former, ref)
        if who is not None
    ]


def _makes_cycle(batch: _Batch, unit_id: str, parent: str) -> bool:
    seen = {unit_id}
    current: str | None = parent
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        row = batch.unit(current)
        current = row.parent if row is not None else None
    return False


def _trigger(session: Session, event: TriggerAnnounced, day: date) -> list[Event]:
    published = to_platform_events(event, lambda _: "", lambda _: False, today=day)
    digest = hashlib.sha256(published[0].model_dump_json(exclude={"event_id"}).encode()).hexdigest()
    row = repo.get_trigger(session, event.trigger_id)
    if row is not None and row.digest == digest:
        return []
    row = row or HrisTrigger(trigger_id=event.trigger_id, digest=digest, updated_at=utcnow())
    row.digest, row.updated_at = digest, utcnow()
    repo.save(session, row)
    return published


# --- entry points: a signed webhook, an import batch ----------------------------------------------


def receive_webhook(
    session: Session, ctx: ConsentContext, vendor: str, headers: Mapping[str, str], body: bytes
) -> HrisWebhookAccepted:
    """Verify (401/413), adapt (400/404/422), then apply once per webhook id, in this transaction."""
    if vendor not in VENDORS:
        raise NotFound("Unknown HRIS vendor.", code="unknown-vendor")
    secrets = [s.get_secret_value() for s in ctx.settings.hris_webhook_secrets]
    webhook = read_hris_webhook(headers, body, secrets, vendor)
    accepted = {"webhook_id": webhook.webhook_id, "vendor": vendor, "events": len(webhook.events)}
    _serialise(session, ctx)
    if not repo.record_webhook(session, webhook.webhook_id, vendor, len(webhook.events), utcnow()):
        log.info("hris webhook replayed", extra={"vendor": vendor, "outcome": "replay"})
        return HrisWebhookAccepted(**accepted, published=0, replayed=True)
    applied = apply_events(session, ctx, webhook.events)
    log.info("hris webhook applied", extra={"vendor": vendor, "events": applied.events, "published": applied.published})
    return HrisWebhookAccepted(**accepted, published=applied.published, replayed=False)


def import_batch(session: Session, ctx: ConsentContext, body: bytes) -> HrisImported:
    """One bounded batch of a snapshot document (the CLI sends a file as many of these)."""
    try:
        events = list(iter_document(load_json(body)))
    except SnapshotError as exc:
        raise Unprocessable(
            "A snapshot record is not valid.",
            code="invalid-snapshot-record",
            errors=[{"loc": ["record", str(exc.position)], "type": exc.reason}],
        ) from None
    limit = ctx.settings.hris_import_max_events
    if not events or len(events) > limit:
        raise Unprocessable(f"A batch holds 1 to {limit} events; send a larger snapshot in batches.", code="batch-size")
    _serialise(session, ctx)
    applied = apply_events(session, ctx, events)
    log.info("hris import batch applied", extra={"events": applied.events, "published": applied.published})
    return HrisImported(events=applied.events, published=applied.published)


def _serialise(session: Session, ctx: ConsentContext) -> None:
    """Before the first read or write: the consent write lock (SQLite), then the HRIS lock.

    Taken in this order, like every consent write path (``directory.enter_subject``): a leaver's
    consent changes need the write lock, and taking it only after this transaction already holds
    SQLite's database lock would deadlock with a consent writer waiting for that database lock.
    """
    ctx.hold_write_lock(session)
    repo.lock_hris(session)


def purge_webhook_ids(session: Session, days: int) -> int:
    """Forget processed webhook ids older than ``days`` (the service runs this hourly)."""
    return repo.purge_webhooks(session, utcnow() - timedelta(days=days))
