"""Erasure requests: erase here at once, ask every service, track their acknowledgements.

The request is a row, so it survives restarts. ``ErasureRequested`` goes out through the outbox
in the same transaction; requests still missing acknowledgements are re-published, with a new
event id (so JetStream does not de-duplicate it away), by :func:`resend_stale`, which a
background task runs periodically. The services' erasure is idempotent.

Retention: once every service has acknowledged, the request keeps its id, times and per-service
record counts, and a keyed hash that lets the subject read its status with their token; the
pseudonym is removed. No employee id is ever stored here.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlmodel import Session

from services.consent.clock import as_utc, utcnow
from services.consent.consents import changes
from services.consent.consents import repository as consents_repo
from services.consent.consents.models import GRANTED
from services.consent.deps import ConsentContext
from services.consent.directory import repository as directory_repo
from services.consent.directory import service as directory
from services.consent.erasure import repository as repo
from services.consent.erasure.models import ErasureRequest
from services.consent.erasure.schemas import ErasureAccepted, ErasureStatus, ServiceAck
from services.consent.hris import profile
from services.consent.stats import repository as stats_repo
from shared.bus.outbox import stage
from shared.db import after_commit
from shared.errors import NotFound
from shared.events.consent import Purpose
from shared.events.subject import ErasureRequested, SubjectErased
from shared.shredding import scrub_after_commit
from shared.topology import SUBJECT_REQUEST_RESPONDERS

log = logging.getLogger("kinwell.consent.erasure")


def request_erasure(session: Session, ctx: ConsentContext, employee_id: str) -> ErasureAccepted:
    """Erase the subject here and ask every service to (202: acknowledgements come later)."""
    subject = directory.enter_subject(session, ctx, employee_id)  # serialises with their other changes
    owner = ctx.owner_hash(subject)
    now = utcnow()
    request = repo.open_erasure_for(session, owner)
    if request is None:
        request = ErasureRequest(
            id=str(uuid4()), owner_hash=owner, pseudonym=subject, requested_at=now, last_sent_at=now, attempts=1
        )
        repo.add_request(session, request, SUBJECT_REQUEST_RESPONDERS)
    else:
        # Asked again while open: erase again everywhere (whatever was given since), same request.
        request.last_sent_at, request.attempts = now, request.attempts + 1
        repo.save(session, request)
    requested_at = as_utc(request.requested_at)
    stage(session, ErasureRequested(request_id=UUID(request.id), pseudonym=subject, requested_at=requested_at))
    erase_own_data(session, ctx, subject, request.id)
    session.flush()
    after_commit(session, lambda: erase_event_key(ctx, subject))
    return ErasureAccepted(
        request_id=UUID(request.id), status="pending", status_url=ctx.url(f"/v1/me/erasure/{request.id}")
    )


def erase_own_data(session: Session, ctx: ConsentContext, subject: str, request_id: str) -> None:
    """Erase what consent holds about the subject, keeping only what must be kept.

    Every gate is told ``withdrawn`` (KV put) at once; a purpose that was granted also gets a
    ``ConsentChangedV2`` so consumers delete purpose-only data (sealed under the event key that is
    erased right after the commit: a consumer that finds the key gone reads it as ``withdrawn``,
    ``shared.events.consent.change_of``). Consent rows, the directory entry
    and contact details are deleted. History keeps receipt ids, purposes, states, versions and
    times (proof that consent was given, GDPR Art. 7(1)) but loses the pseudonym and the signed
    receipts, and points to the erasure request instead.
    """
    now = utcnow()
    before = [(Purpose(c.purpose), c.state, c.policy_version) for c in consents_repo.consents_of(session, subject)]
    changes.end_granted(session, ctx.event_keys, subject, "erasure", now)
    for purpose, state, version in before:
        if state != GRANTED:  # already denying: the gates are told ``withdrawn``, without an event
            changes.project(session, subject, purpose, "withdrawn", version, now, sealed_under=None)
    for purpose, _, _ in before:
        # After every gate has seen ``withdrawn``: no value and no history left in the bucket.
        changes.purge_projection(session, subject, purpose)
    consents_repo.delete_consents(session, subject)
    directory_repo.delete_directory(session, subject)
    stats_repo.forget(session, subject)  # who was in which released statistic
    profile.forget(session, subject)  # org unit and profile the HRIS sent
    session.flush()
    consents_repo.unlink_history(session, subject, request_id)


def erase_event_key(ctx: ConsentContext, subject: str) -> None:
    """Shred every event field ever sealed for the subject (``shared.eventkeys``).

    Best effort after the commit; it runs again at every re-publication of the request and when
    the last service acknowledges (so a key a producer re-created meanwhile goes too)."""
    try:
        ctx.event_keys.erase_blocking(subject)
    except Exception as exc:  # noqa: BLE001 - retried with the request (resend_stale, completion)
        log.warning("event key erasure failed; retried later", extra={"error_type": type(exc).__name__})


def record_ack(session: Session, event: SubjectErased, via: str, ctx: ConsentContext | None = None) -> None:
    """Apply ``via``'s acknowledgement; complete the request when it is the last one missing."""
    if event.service != via:
        # The broker lets only ``via`` publish on its stream; an ack naming another service is
        # a bug there, and must not count for that other service.
        log.warning("erasure ack for another service ignored", extra={"service": via})
        return
    request = repo.lock_erasure(session, str(event.request_id))
    if request is None:
        log.warning("erasure ack for an unknown request ignored", extra={"service": via})
        return
    acks = {a.service: a for a in repo.acks_of(session, request.id)}
    ack = acks.get(via)
    if ack is None or ack.acknowledged_at is not None:
        return  # a re-published request acknowledged twice
    now = utcnow()
    ack.acknowledged_at, ack.records = now, event.records
    repo.save(session, ack)
    if request.completed_at is None and all(a.acknowledged_at is not None for a in acks.values()):
        if ctx is not None and request.pseudonym is not None:
            subject = request.pseudonym
            after_commit(session, lambda: erase_event_key(ctx, subject))
        request.completed_at, request.pseudonym = now, None
        repo.save(session, request)
        # The pseudonym was kept only to re-send the request: no copy may stay in the files (nor
        # of the request event that carried it through the outbox).
        scrub_after_commit(session, ("erasure_request", "outbox"))
    session.flush()


def resend_stale(session: Session, retry_after_seconds: float, ctx: ConsentContext | None = None) -> int:
    """Re-publish open requests not sent for ``retry_after_seconds`` (and erase their subjects'
    event keys again); returns how many."""
    now = utcnow()
    resent = 0
    for request in repo.stale_erasures(session, now - timedelta(seconds=retry_after_seconds)):
        if request.pseudonym is None:
            continue
        stage(
            session,
            ErasureRequested(
                request_id=UUID(request.id), pseudonym=request.pseudonym, requested_at=as_utc(request.requested_at)
            ),
        )
        request.last_sent_at, request.attempts = now, request.attempts + 1
        repo.save(session, request)
        if ctx is not None:
            subject = request.pseudonym
            after_commit(session, lambda subject=subject: erase_event_key(ctx, subject))  # type: ignore[misc]
        resent += 1
    session.flush()
    return resent


def _status(session: Session, request: ErasureRequest) -> ErasureStatus:
    acks = repo.acks_of(session, request.id)
    return ErasureStatus(
        request_id=UUID(request.id),
        status="completed" if request.completed_at is not None else "pending",
        requested_at=as_utc(request.requested_at),
        completed_at=as_utc(request.completed_at) if request.completed_at else None,
        attempts=request.attempts,
        services=[
            ServiceAck(
                service=a.service,
                status="acknowledged" if a.acknowledged_at else "pending",
                records=a.records,
                acknowledged_at=as_utc(a.acknowledged_at) if a.acknowledged_at else None,
            )
            for a in acks
        ],
    )


def status(session: Session, ctx: ConsentContext, employee_id: str, request_id: UUID) -> ErasureStatus:
    """The subject's own request only: another subject's id is simply not found."""
    request = repo.get_erasure(session, str(request_id))
    if request is None or request.owner_hash != ctx.owner_hash(ctx.pseudonym(employee_id)):
        raise NotFound("No such erasure request.")
    return _status(session, request)


def erasures_export(session: Session, ctx: ConsentContext, subject: str) -> list[dict[str, Any]]:
    requests = repo.erasures_of(session, ctx.owner_hash(subject))
    return [_status(session, r).model_dump(mode="json") for r in requests]
