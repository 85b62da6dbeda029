"""Consent rules: grant, withdraw, read; every change recorded, signed and projected.

Each change writes, in the caller's transaction: the consent row, a history row with its signed
receipt, the KV put every gate watches and a ``ConsentChanged`` event (both through the outbox).
A rolled-back request therefore changes nothing anywhere; a committed one reaches every gate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlmodel import Session

from services.consent import directory, hris_profile
from services.consent import repository as repo
from services.consent.deps import SERIALISED, ConsentContext
from services.consent.models import PolicyVersion, as_utc, utcnow
from services.consent.receipts import sign_receipt
from services.consent.schemas import (
    DEFAULT_LANGUAGE,
    Channel,
    ConsentGrant,
    ConsentRead,
    ConsentsRead,
    HistoryEntry,
    HistoryRead,
    Lapse,
    ReceiptRead,
)
from shared.bus.kvput import VERSION_HEADER
from shared.bus.outbox import stage, stage_kv, stage_raw
from shared.consent_gate import kv_key, kv_value
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.consent import ConsentChanged, ConsentState, Purpose
from shared.pagination import PageRequest, page
from shared.topology import KV_BUCKET


def policy_version(session: Session, ctx: ConsentContext, purpose: str, version: int) -> PolicyVersion | None:
    """A published policy version, from the process cache or the database (then cached, detached)."""
    cached = ctx.policies.get((purpose, version))
    if cached is None:
        row = repo.get_version(session, purpose, version)
        if row is None:
            return None
        cached = ctx.policies[(purpose, version)] = PolicyVersion.model_validate(row.model_dump())
    return cached


def text_for(policy: PolicyVersion, lang: str) -> tuple[str, dict[str, Any]]:
    """The policy's text in ``lang``, falling back to English; returns (language used, text)."""
    used = lang if lang in policy.texts else DEFAULT_LANGUAGE
    return used, policy.texts[used]


def record_change(
    session: Session,
    *,
    subject: str,
    purpose: Purpose,
    state: ConsentState,
    policy_version: int,
    at: datetime,
    receipt: tuple[str, str] | None = None,
    channel: Channel | None = None,
    language: str | None = None,
    reason: str | None = None,
    kv_version: int | None = None,
) -> int:
    """History row (with its signed ``receipt``, if any), KV put and event; returns the KV version
    (``kv_version`` when the caller has already raised it, as a lapse does)."""
    receipt_id, receipt_jws = receipt or (None, None)
    repo.add_history(
        session,
        {
            "receipt_id": receipt_id,
            "pseudonym": subject,
            "purpose": purpose.value,
            "state": state,
            "policy_version": policy_version,
            "at": at,
            "channel": channel.value if channel else None,
            "language": language,
            "reason": reason,
            "receipt_jws": receipt_jws,
        },
    )
    return project(session, subject, purpose, state, policy_version, at, kv_version=kv_version)


def project(
    session: Session,
    subject: str,
    purpose: Purpose,
    state: ConsentState,
    version: int,
    at: datetime,
    *,
    kv_version: int | None = None,
    event: bool = True,
) -> int:
    """Stage the KV put (first: gates watch it) and the ``ConsentChanged`` event; returns the put's
    KV version (raised here unless the caller passes it)."""
    if kv_version is None:
        kv_version = next_kv_version(session, subject, purpose)
    changed = ConsentChanged(pseudonym=subject, purpose=purpose, state=state, policy_version=version, changed_at=at)
    value = kv_value(state, version, at.isoformat(), kv_version)
    stage_kv(session, KV_BUCKET, kv_key(subject, purpose.value), value, kv_version, f"kv:{changed.event_id}")
    if event:
        stage(session, changed)
    return kv_version


def next_kv_version(session: Session, subject: str, purpose: Purpose) -> int:
    """The next version of the subject's KV key: one more than the consent row's (whose update
    orders concurrent changes), or, for a consent not yet in the database, the time in
    microseconds, so that a key given again after its row was deleted (erasure) starts above every
    version it had before. Store it with the row (``kv_version``) when inserting one."""
    raised = repo.bump_kv_version(session, subject, purpose.value)
    return raised if raised is not None else time.time_ns() // 1000


KV_PURGE_HEADERS = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}


def purge_projection(session: Session, subject: str, purpose: Purpose) -> None:
    """Stage a KV purge of the subject's key (erasure): the bucket keeps no value and no history,
    only an empty marker. Call it while the consent row exists: its version is raised above the
    ``withdrawn`` put's, so the relay writes the purge last (``shared.bus.kvput``)."""
    version = next_kv_version(session, subject, purpose)
    headers = {**KV_PURGE_HEADERS, VERSION_HEADER: str(version)}
    stage_raw(session, f"$KV.{KV_BUCKET}.{kv_key(subject, purpose.value)}", b"", f"kv-purge:{uuid4()}", headers=headers)


def grant(session: Session, ctx: ConsentContext, employee_id: str, purpose: Purpose, body: ConsentGrant) -> ConsentRead:
    if body.contact is not None and purpose is not Purpose.escalation:
        raise Unprocessable(
            "Contact details are collected only with the escalation purpose.", code="contact-not-allowed"
        )
    # Read, check and sign first; write last, so the subject's lock (and on SQLite the
    # database's write lock) is held for as short a time as possible.
    current = repo.current_version(session, purpose.value, share=True)
    policy = policy_version(session, ctx, purpose.value, current) if current else None
    if policy is None:
        raise NotFound("Unknown purpose.")
    _require_current(body.policy_version, policy.version)
    if body.language not in policy.texts:
        raise Unprocessable("The policy is not available in that language.", code="language-not-available")
    now = utcnow()
    receipt = sign_receipt(
        ctx,
        subject=ctx.pseudonym(employee_id),
        policy=policy,
        state="granted",
        at=now,
        channel=body.channel,
        language=body.language,
    )
    subject = directory.enter_subject(session, ctx, employee_id)
    if not session.info.get(SERIALISED):
        # Under the write lock now: a version published since the read above must be refused here
        # (PostgreSQL's FOR SHARE already guarantees it; SQLite reads took no lock, unless the
        # transaction began IMMEDIATE, as the consent writer's do).
        _require_current(body.policy_version, repo.current_version(session, purpose.value) or 0)
    existing = repo.get_consent(session, subject, purpose.value)
    if existing is not None and existing.state == repo.GRANTED and existing.policy_version == policy.version:
        # Already granted at this version: nothing changes, so no new history entry, receipt,
        # KV put or event (a client retrying, or a loop, cannot grow the history without bound).
        if body.contact is not None:
            directory.store_contact(session, ctx, subject, body.contact)
        return _view(session, ctx, purpose, existing.model_dump(), policy, body.language)
    kv_version = record_change(
        session,
        subject=subject,
        purpose=purpose,
        state="granted",
        policy_version=policy.version,
        at=now,
        receipt=receipt,
        channel=body.channel,
        language=body.language,
    )
    consent = {
        "pseudonym": subject,
        "purpose": purpose.value,
        "state": "granted",
        "policy_version": policy.version,
        "changed_at": now,
        "channel": body.channel.value,
        "language": body.language,
        "receipt_id": receipt[0],
        "lapsed_by_version": None,
        "kv_version": kv_version,
    }
    repo.save_consent(session, consent)
    if body.contact is not None:
        directory.store_contact(session, ctx, subject, body.contact)
    hris_profile.on_granted(session, subject, purpose, ctx.event_keys)  # personalization: the HRIS profile, if known
    return _view(session, ctx, purpose, consent, policy, body.language)


def _require_current(given: int, current: int) -> None:
    if given != current:
        raise Conflict(
            "Consent can only be given to the current policy version; read it and try again.",
            code="policy-version-not-current",
            current_version=current,
        )


def withdraw(
    session: Session, ctx: ConsentContext, employee_id: str, purpose: Purpose, channel: Channel, lang: str | None
) -> ConsentRead:
    subject = directory.enter_subject(session, ctx, employee_id)
    current = repo.consent_state(session, subject, purpose.value)
    if current is None or current[0] != repo.GRANTED:
        raise Conflict("There is no current consent to withdraw.", code="not-granted")
    _, consented_version, consented_language = current
    policy = policy_version(session, ctx, purpose.value, consented_version)
    language = lang or consented_language or DEFAULT_LANGUAGE
    now = utcnow()
    receipt = None
    if policy is not None:
        receipt = sign_receipt(
            ctx, subject=subject, policy=policy, state="withdrawn", at=now, channel=channel, language=language
        )
    kv_version = record_change(
        session,
        subject=subject,
        purpose=purpose,
        state="withdrawn",
        policy_version=consented_version,
        at=now,
        receipt=receipt,
        channel=channel,
        language=language,
    )
    consent = {
        "pseudonym": subject,
        "purpose": purpose.value,
        "state": "withdrawn",
        "policy_version": consented_version,
        "changed_at": now,
        "channel": channel.value,
        "language": language,
        "receipt_id": receipt[0] if receipt else None,
        "lapsed_by_version": None,
        "kv_version": kv_version,
    }
    repo.save_consent(session, consent)
    if purpose is Purpose.escalation:
        repo.delete_contact(session, subject)  # held only for this purpose
    return _view(session, ctx, purpose, consent, None, language)


def consents(session: Session, ctx: ConsentContext, employee_id: str, lang: str) -> ConsentsRead:
    subject = ctx.pseudonym(employee_id)
    current = {p.purpose: p for p in repo.current_versions(session)}
    rows = {c.purpose: c.model_dump() for c in repo.consents_of(session, subject)}
    return ConsentsRead(
        consents=[
            _view(session, ctx, purpose, rows.get(purpose.value), current[purpose.value], lang) for purpose in Purpose
        ]
    )


def _view(
    session: Session,
    ctx: ConsentContext,
    purpose: Purpose,
    consent: Mapping[str, Any] | None,
    current: PolicyVersion | None,
    lang: str,
) -> ConsentRead:
    """The employee's view of one purpose; ``current`` is looked up when not given."""
    if current is None:
        version = repo.current_version(session, purpose.value)
        current = policy_version(session, ctx, purpose.value, version) if version else None
    if current is None:
        raise NotFound("Unknown purpose.")
    _, text = text_for(current, lang)
    if consent is None:
        return ConsentRead(
            purpose=purpose, title=text["title"], state="not_given", policy_version=None,
            current_policy_version=current.version,
        )  # fmt: skip
    lapse, lapsed_by = None, consent["lapsed_by_version"]
    if consent["state"] == "lapsed" and lapsed_by is not None:
        newer = policy_version(session, ctx, purpose.value, lapsed_by)
        summary = text_for(newer, lang)[1].get("change_summary") if newer else None
        lapse = Lapse(reason="policy_updated", new_version=lapsed_by, summary=summary, at=as_utc(consent["changed_at"]))
    return ConsentRead(
        purpose=purpose,
        title=text["title"],
        state=consent["state"],
        policy_version=consent["policy_version"],
        current_policy_version=current.version,
        changed_at=as_utc(consent["changed_at"]),
        channel=Channel(consent["channel"]) if consent["channel"] else None,
        language=consent["language"],
        receipt_id=UUID(consent["receipt_id"]) if consent["receipt_id"] else None,
        lapse=lapse,
    )


def history(session: Session, ctx: ConsentContext, employee_id: str, request: PageRequest | None = None) -> HistoryRead:
    """The whole history (for an export), or one page of it."""
    if request is None:
        entries, next_cursor = repo.history_of(session, ctx.pseudonym(employee_id)), None
    else:
        after = request.after(int)
        rows = repo.history_of(session, ctx.pseudonym(employee_id), after[0] if after else None, request.limit + 1)
        entries, next_cursor = page(rows, request, lambda e: (e.id,))
    return HistoryRead(
        next_cursor=next_cursor,
        entries=[
            HistoryEntry(
                receipt_id=UUID(e.receipt_id) if e.receipt_id else None,
                purpose=Purpose(e.purpose),
                state=e.state,  # type: ignore[arg-type]
                policy_version=e.policy_version,
                at=as_utc(e.at),
                channel=Channel(e.channel) if e.channel else None,
                language=e.language,
                reason=e.reason,
            )
            for e in entries
        ],
    )


def receipt(session: Session, ctx: ConsentContext, employee_id: str, receipt_id: UUID) -> ReceiptRead:
    """Only the subject's own receipts: another subject's id is simply not found."""
    entry = repo.receipt_of(session, ctx.pseudonym(employee_id), str(receipt_id))
    if entry is None or entry.receipt_jws is None:
        raise NotFound("No such receipt.")
    return ReceiptRead(receipt_id=receipt_id, receipt=entry.receipt_jws, jwks_uri=ctx.url("/.well-known/jwks.json"))
