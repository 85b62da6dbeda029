"""Every change of a consent's state, by one path: the history row (with its receipt, if any),
the KV put every gate watches and a ``ConsentChangedV2`` event (both through the outbox; the
event's state, version and time sealed under the subject's event key), and the consent row, all
in the caller's transaction. A rolled-back change therefore changes nothing
anywhere; a committed one reaches every gate. Grants and withdrawals (``service.py``), a leaver
(``hris``), an erasure and a material policy version all come through here.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlmodel import Session

from services.consent.consents import repository as repo
from services.consent.consents.models import GRANTED
from services.consent.consents.schemas import Channel
from shared.bus.kvput import VERSION_HEADER
from shared.bus.outbox import stage, stage_kv, stage_raw
from shared.consent_gate import kv_key, kv_value
from shared.datakeys import SubjectKey
from shared.eventkeys import EventKeyring
from shared.events.consent import ConsentChangedV2, ConsentState, Purpose
from shared.topology import KV_BUCKET


def record_change(
    session: Session,
    *,
    key: SubjectKey,
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
    """History row (with its signed ``receipt``, if any), KV put and event (sealed under the
    subject's event ``key``); returns the KV version (``kv_version`` when the caller has already
    raised it, as a lapse does)."""
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
    return project(session, subject, purpose, state, policy_version, at, kv_version=kv_version, sealed_under=key)


def project(
    session: Session,
    subject: str,
    purpose: Purpose,
    state: ConsentState,
    version: int,
    at: datetime,
    *,
    kv_version: int | None = None,
    sealed_under: SubjectKey | None,
) -> int:
    """Stage the KV put (first: gates watch it) and, when ``sealed_under`` the subject's event key,
    the ``ConsentChangedV2`` event (None: the gates only, as erasure tells them of consents that
    already denied); returns the put's KV version (raised here unless the caller passes it)."""
    if kv_version is None:
        kv_version = next_kv_version(session, subject, purpose)
    value = kv_value(state, version, at.isoformat(), kv_version)
    stage_kv(session, KV_BUCKET, kv_key(subject, purpose.value), value, kv_version, f"kv:{uuid4()}")
    if sealed_under is not None:
        stage(session, ConsentChangedV2.of(sealed_under, subject, purpose, state, version, at))
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


def save_state(
    session: Session,
    subject: str,
    purpose: Purpose,
    state: ConsentState,
    version: int,
    at: datetime,
    kv_version: int,
    *,
    channel: Channel | None = None,
    language: str | None = None,
    receipt_id: str | None = None,
) -> dict[str, Any]:
    """Store the subject's current consent to ``purpose`` (every column); returns the row's values."""
    consent = {
        "pseudonym": subject,
        "purpose": purpose.value,
        "state": state,
        "policy_version": version,
        "changed_at": at,
        "channel": channel.value if channel else None,
        "language": language,
        "receipt_id": receipt_id,
        "lapsed_by_version": None,
        "kv_version": kv_version,
    }
    repo.save_consent(session, consent)
    return consent


def end_granted(session: Session, keys: EventKeyring, subject: str, reason: str, at: datetime) -> int:
    """End every granted consent of ``subject`` as a withdrawal does; returns how many.

    For changes the employee did not make (they left; they asked for erasure, which then deletes
    the rows): history with ``reason`` and no receipt, KV put and ``ConsentChangedV2`` go out in
    this transaction, so every gate denies once it commits. Lapsed and withdrawn consents already
    deny and stay as they are. The caller holds the subject's lock (``directory.enter_subject``).
    """
    ended = 0
    granted = [c for c in repo.consents_of(session, subject) if c.state == GRANTED]
    key = keys.get_or_create_blocking(subject) if granted else None
    for consent in granted:
        assert key is not None
        purpose = Purpose(consent.purpose)
        kv_version = record_change(
            session,
            key=key,
            subject=subject,
            purpose=purpose,
            state="withdrawn",
            policy_version=consent.policy_version,
            at=at,
            reason=reason,
        )
        save_state(
            session, subject, purpose, "withdrawn", consent.policy_version, at, kv_version, language=consent.language
        )
        ended += 1
    session.expire_all()  # consent rows were written with core statements
    return ended


def lapse(session: Session, keys: EventKeyring, purpose: Purpose, new_version: int, at: datetime) -> int:
    """Lapse every consent granted to ``purpose`` (a material new policy version); returns how many."""
    lapsed = repo.lapse_granted(session, purpose.value, new_version, at)
    sealing = keys.get_or_create_many_blocking([subject for subject, _, _ in lapsed])  # together, not one by one
    for subject, consented_version, kv_version in lapsed:
        record_change(
            session,
            key=sealing[subject],
            subject=subject,
            purpose=purpose,
            state="lapsed",
            policy_version=consented_version,
            at=at,
            reason="policy_updated",
            kv_version=kv_version,
        )
    return len(lapsed)
