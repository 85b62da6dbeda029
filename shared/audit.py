"""A tamper-evident (keyed, hash-chained) audit log of every access to a subject's data by a person.

Each entry's hash is an HMAC-SHA256, under the service's ``audit_key`` (a platform secret the
database holder does not have), of its own fields and the previous entry's hash; a one-row head
records the newest sequence number and hash. With a plain hash, whoever could write the database
could delete a subject's entries and recompute the chain; without the key they cannot. Every read
of the log (:func:`access_log`) verifies the whole chain first and refuses a broken one
(:class:`ChainBroken`); ``kinwell_audit_chain_intact`` says the last verdict.
Editing an entry breaks its hash, deleting one breaks the link of
the next (or the head, for the last one), so :func:`verify` finds both. The head row is locked for
each append, so concurrent appends on PostgreSQL cannot fork the chain.

Whoever holds the database *and* the key could still cut the newest entries off (the rest stays a
valid chain) or restore an older copy. So each service also anchors its head (sequence number and
hash) in the append-only ``AUDIT`` stream (:func:`check_and_anchor`, on the verification schedule),
where it cannot delete or purge it; verification then also requires the last anchored head to be
in the chain, at its sequence number with its hash (:class:`Anchor`).

Entries name the actor and subject by pseudonym or role, the action and purpose by fixed codes:
an audit log must not become a second copy of the data it guards.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge
from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from shared.telemetry import REGISTRY
from shared.topology import AUDIT_STREAM, audit_head_subject

GENESIS = "0" * 64
_KEY: list[bytes] = []  # the service's audit key, set once at start (use_key)

CHAIN_INTACT = Gauge(
    "kinwell_audit_chain_intact",
    "1 if the last verification of this service's audit chain passed, 0 if it found a rewrite",
    registry=REGISTRY,
)
VERIFICATIONS = Counter(
    "kinwell_audit_verifications_total",
    "Audit chain verifications, by outcome (ok, broken)",
    ["outcome"],
    registry=REGISTRY,
)
ANCHORED_AT = Gauge(
    "kinwell_audit_anchored_timestamp_seconds",
    "When this service last anchored its audit chain head in the AUDIT stream (Unix time)",
    registry=REGISTRY,
)
ANCHORS = Counter(
    "kinwell_audit_anchors_total",
    "Audit head anchorings in the AUDIT stream, by outcome (ok, skipped: chain broken, failed)",
    ["outcome"],
    registry=REGISTRY,
)


class ChainBroken(Exception):
    """The audit chain does not verify: entries were edited, deleted or re-chained without the key."""


def use_key(key: bytes) -> None:
    """Key the chain (the app factory calls it with the service's ``audit_key``)."""
    if len(key) < 32:
        raise ValueError("the audit key must be at least 32 bytes")
    _KEY[:] = [hmac.new(key, b"kinwell audit chain v2", hashlib.sha256).digest()]


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True)
    at: datetime
    actor: str = Field(max_length=128, description="Who accessed: a pseudonym or service name.")
    actor_role: str = Field(max_length=32)
    subject: str = Field(max_length=128, index=True, description="Whose data: the subject's pseudonym.")
    action: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = GENESIS


def _digest(
    prev_hash: str, seq: int, at: datetime, actor: str, role: str, subject: str, action: str, purpose: str
) -> str:
    body = json.dumps(
        [prev_hash, seq, at.astimezone(UTC).isoformat(), actor, role, subject, action, purpose],
        separators=(",", ":"),
    )
    if not _KEY:
        raise RuntimeError("the audit chain is not keyed (shared.audit.use_key)")
    return hmac.new(_KEY[0], body.encode(), hashlib.sha256).hexdigest()


def append(session: Session, *, actor: str, actor_role: str, subject: str, action: str, purpose: str) -> AuditEntry:
    """Add an entry in the caller's transaction (it commits or rolls back with the access)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead()
        session.add(head)
    at = datetime.now(UTC).replace(microsecond=0)
    seq = head.seq + 1
    digest = _digest(head.hash, seq, at, actor, actor_role, subject, action, purpose)
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        actor_role=actor_role,
        subject=subject,
        action=action,
        purpose=purpose,
        prev_hash=head.hash,
        hash=digest,
    )
    head.seq, head.hash = seq, digest
    session.add(entry)
    session.add(head)
    session.flush()
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Anchor:
    """A head the service published where it cannot take it back: the chain must still hold it."""

    seq: int
    hash: str


class AnchorPublished(BaseModel):
    """``audit.<service>.head.v1``: the head of a service's audit chain (no personal data)."""

    service: str
    seq: int
    hash: str
    at: datetime


# The last anchor each database's chain is checked against, by engine (several services, each with
# its own engine, run in one test process).
_ANCHORS: weakref.WeakKeyDictionary[Engine, Anchor] = weakref.WeakKeyDictionary()


def remember_anchor(engine: Engine, anchor: Anchor | None) -> None:
    """Check this engine's chain against ``anchor`` from now on (newer replaces older)."""
    held = _ANCHORS.get(engine)
    if anchor is not None and (held is None or anchor.seq >= held.seq):
        _ANCHORS[engine] = anchor


def _anchor_of(session: Session) -> Anchor | None:
    bind = session.get_bind()
    return _ANCHORS.get(bind) if isinstance(bind, Engine) else None


def head(session: Session) -> Anchor:
    """The chain's head as the database says (sequence 0 and the genesis hash when empty)."""
    row = session.get(AuditHead, 1)
    return Anchor(row.seq, row.hash) if row else Anchor(0, GENESIS)


def verify(session: Session) -> Verification:
    """Walk the chain from the start; report the first entry that does not hold (and the metrics).
    The last anchored head this process knows of (:func:`remember_anchor`) must be in the chain."""
    result = _walk(session, _anchor_of(session))
    CHAIN_INTACT.set(1 if result.ok else 0)
    VERIFICATIONS.labels("ok" if result.ok else "broken").inc()
    return result


def verified(session: Session) -> None:
    """Raise :class:`ChainBroken` unless the whole chain verifies (before every read of the log)."""
    if not verify(session).ok:
        raise ChainBroken("the audit chain does not verify")


def _walk(session: Session, anchor: Anchor | None) -> Verification:
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for entry in session.exec(select(AuditEntry).order_by(AuditEntry.seq)):  # type: ignore[arg-type]
        if entry.seq != expected_seq:
            return Verification(False, checked, expected_seq, "missing entry")
        if entry.prev_hash != prev_hash:
            return Verification(False, checked, entry.seq, "broken link")
        if anchor is not None and entry.seq == anchor.seq and entry.hash != anchor.hash:
            return Verification(False, checked, entry.seq, "anchored entry replaced")
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
        if (
            _digest(prev_hash, entry.seq, at, entry.actor, entry.actor_role, entry.subject, entry.action, entry.purpose)
            != entry.hash
        ):
            return Verification(False, checked, entry.seq, "entry altered")
        prev_hash, expected_seq, checked = entry.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != checked or head_hash != prev_hash:
        return Verification(False, checked, checked + 1, "missing entry")
    if anchor is not None and checked < anchor.seq:
        return Verification(False, checked, checked + 1, "behind the anchored head")
    return Verification(True, checked)


async def last_anchor(js: Any, service: str) -> Anchor | None:
    """The newest head ``service`` anchored in the AUDIT stream (a direct get), None if none yet."""
    try:
        msg = await js.get_last_msg(AUDIT_STREAM, audit_head_subject(service), direct=True)
    except NotFoundError:
        return None
    published = AnchorPublished.model_validate_json(msg.data or b"")
    return Anchor(published.seq, published.hash)


async def check_and_anchor(engine: Engine, bus: Any, service: str, *, connected: bool) -> int:
    """One scheduled round: learn the last anchored head (when the bus is up), verify the chain
    against it, then anchor the current head, also when it has not moved, so the newest anchor is
    never older than the schedule's period. A chain that does not verify is not anchored (that
    would vouch for the rewrite). Returns the number of entries checked."""
    if connected:
        remember_anchor(engine, await last_anchor(bus.js, service))

    def check() -> tuple[Verification, Anchor]:
        with Session(engine) as session:
            return verify(session), head(session)

    result, current = await asyncio.to_thread(check)
    if not result.ok:
        ANCHORS.labels("skipped").inc()
    elif connected:
        body = AnchorPublished(service=service, seq=current.seq, hash=current.hash, at=datetime.now(UTC))
        try:
            await bus.publish(audit_head_subject(service), body.model_dump_json().encode(), uuid.uuid4().hex)
        except Exception:
            ANCHORS.labels("failed").inc()
            raise
        remember_anchor(engine, current)
        ANCHORS.labels("ok").inc()
        ANCHORED_AT.set(time.time())
    return result.checked


def entries_for(session: Session, subject: str) -> list[AuditEntry]:
    """What the subject may read: every access to their data."""
    return list(session.exec(select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.seq)))  # type: ignore[arg-type]


class AccessLogEntry(BaseModel):
    """One access to a subject's data as every service reports it (the consent service's
    ``GET /v1/me/access-log`` gathers these over request/reply)."""

    at: datetime
    actor: str = PydanticField(description="A pseudonym or a service name, never an employee id.")
    actor_role: str
    action: str
    purpose: str


def access_log(session: Session, subject: str) -> dict[str, Any]:
    """The reply every service gives to an access-log request: its entries about ``subject``, only
    if the whole chain verifies (else :class:`ChainBroken`: the reply names the error type)."""
    verified(session)
    return {
        "entries": [
            AccessLogEntry(
                at=e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC),  # SQLite returns naive UTC
                actor=e.actor,
                actor_role=e.actor_role,
                action=e.action,
                purpose=e.purpose,
            ).model_dump(mode="json")
            for e in entries_for(session, subject)
        ]
    }
