"""An employee's consents: grant and withdraw (signed receipts; the change itself goes through
``changes.py``), and reading one's consents, history and receipts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel import Session

from services.consent.clock import as_utc, utcnow
from services.consent.consents import changes
from services.consent.consents import repository as repo
from services.consent.consents.models import GRANTED
from services.consent.consents.receipts import sign_receipt
from services.consent.consents.schemas import (
    Channel,
    ConsentGrant,
    ConsentRead,
    ConsentsRead,
    HistoryEntry,
    HistoryRead,
    Lapse,
    ReceiptRead,
)
from services.consent.deps import SERIALISED, ConsentContext
from services.consent.directory import repository as directory_repo
from services.consent.directory import service as directory
from services.consent.hris import profile
from services.consent.policy import repository as policy_repo
from services.consent.policy.models import DEFAULT_LANGUAGE, PolicyVersion
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.consent import Purpose
from shared.pagination import PageRequest, page


def grant(session: Session, ctx: ConsentContext, employee_id: str, purpose: Purpose, body: ConsentGrant) -> ConsentRead:
    if body.contact is not None and purpose is not Purpose.escalation:
        raise Unprocessable(
            "Contact details are collected only with the escalation purpose.", code="contact-not-allowed"
        )
    # Read, check and sign first; write last, so the subject's lock (and on SQLite the
    # database's write lock) is held for as short a time as possible.
    current = policy_repo.current_version(session, purpose.value, share=True)
    policy = policy_repo.policy_version(session, ctx, purpose.value, current) if current else None
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
    key = ctx.event_keys.get_or_create_blocking(ctx.pseudonym(employee_id))  # seals the event
    subject = directory.enter_subject(session, ctx, employee_id)
    if not session.info.get(SERIALISED):
        # Under the write lock now: a version published since the read above must be refused here
        # (PostgreSQL's FOR SHARE already guarantees it; SQLite reads took no lock, unless the
        # transaction began IMMEDIATE, as the consent writer's do).
        _require_current(body.policy_version, policy_repo.current_version(session, purpose.value) or 0)
    existing = repo.get_consent(session, subject, purpose.value)
    if existing is not None and existing.state == GRANTED and existing.policy_version == policy.version:
        # Already granted at this version: nothing changes, so no new history entry, receipt,
        # KV put or event (a client retrying, or a loop, cannot grow the history without bound).
        if body.contact is not None:
            directory.store_contact(session, ctx, subject, body.contact)
        return _view(session, ctx, purpose, existing.model_dump(), policy, body.language)
    kv_version = changes.record_change(
        session,
        key=key,
        subject=subject,
        purpose=purpose,
        state="granted",
        policy_version=policy.version,
        at=now,
        receipt=receipt,
        channel=body.channel,
        language=body.language,
    )
    consent = changes.save_state(
        session,
        subject,
        purpose,
        "granted",
        policy.version,
        now,
        kv_version,
        channel=body.channel,
        language=body.language,
        receipt_id=receipt[0],
    )
    if body.contact is not None:
        directory.store_contact(session, ctx, subject, body.contact)
    profile.on_granted(session, subject, purpose, ctx.event_keys)  # personalization: the HRIS profile, if known
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
    if current is None or current[0] != GRANTED:
        raise Conflict("There is no current consent to withdraw.", code="not-granted")
    _, consented_version, consented_language = current
    policy = policy_repo.policy_version(session, ctx, purpose.value, consented_version)
    language = lang or consented_language or DEFAULT_LANGUAGE
    now = utcnow()
    receipt = None
    if policy is not None:
        receipt = sign_receipt(
            ctx, subject=subject, policy=policy, state="withdrawn", at=now, channel=channel, language=language
        )
    kv_version = changes.record_change(
        session,
        key=ctx.event_keys.get_or_create_blocking(subject),
        subject=subject,
        purpose=purpose,
        state="withdrawn",
        policy_version=consented_version,
        at=now,
        receipt=receipt,
        channel=channel,
        language=language,
    )
    consent = changes.save_state(
        session,
        subject,
        purpose,
        "withdrawn",
        consented_version,
        now,
        kv_version,
        channel=channel,
        language=language,
        receipt_id=receipt[0] if receipt else None,
    )
    if purpose is Purpose.escalation:
        directory_repo.delete_contact(session, subject)  # held only for this purpose
    return _view(session, ctx, purpose, consent, None, language)


def consents(session: Session, ctx: ConsentContext, employee_id: str, lang: str) -> ConsentsRead:
    subject = ctx.pseudonym(employee_id)
    current = {p.purpose: p for p in policy_repo.current_versions(session)}
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
        version = policy_repo.current_version(session, purpose.value)
        current = policy_repo.policy_version(session, ctx, purpose.value, version) if version else None
    if current is None:
        raise NotFound("Unknown purpose.")
    _, text = current.text(lang)
    if consent is None:
        return ConsentRead(
            purpose=purpose, title=text["title"], state="not_given", policy_version=None,
            current_policy_version=current.version,
        )  # fmt: skip
    lapse, lapsed_by = None, consent["lapsed_by_version"]
    if consent["state"] == "lapsed" and lapsed_by is not None:
        newer = policy_repo.policy_version(session, ctx, purpose.value, lapsed_by)
        summary = newer.text(lang)[1].get("change_summary") if newer else None
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
