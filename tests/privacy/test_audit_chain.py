"""Issue 11 item 7: the access log could be rewritten, and nobody checked it.

The attack: someone with write access to a service's database (not its secrets) deletes a
subject's entries and recomputes the chain and the head so that it still links up. With the plain
SHA-256 chain this passed ``verify()`` and nothing ever called it. Now the chain is an HMAC under
the service's ``audit_key``, every read of the log verifies it, and a rewrite is reported.

The key does not stop its holder (or a restore of an older backup) from cutting the newest entries
off: what is left is a valid chain. Each service therefore anchors its head in the append-only
AUDIT stream, and the chain must still hold the last anchored head.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from shared import audit
from shared.app import audit_round
from tests.consent.conftest import new_sub
from tests.consent.test_consent_flow import grant


def _recompute_without_the_key(session: Session) -> None:
    """What the attacker can do: re-chain what is left with the hash they can compute."""
    prev = audit.GENESIS
    rows = list(session.exec(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)))  # type: ignore[arg-type]
    for seq, row in enumerate(rows, start=1):
        at = (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        body = json.dumps(
            [prev, seq, at, row.actor, row.actor_role, row.subject, row.action, row.purpose], separators=(",", ":")
        )
        digest = hashlib.sha256(body.encode()).hexdigest()
        rechain = text("UPDATE audit_log SET seq = :new, prev_hash = :p, hash = :h WHERE seq = :old")
        session.exec(rechain.bindparams(new=seq, p=prev, h=digest, old=row.seq))
        prev = digest
    session.exec(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1").bindparams(s=len(rows), h=prev))
    session.commit()


@contextmanager
def _restored(engine: Any) -> Iterator[None]:
    """Put the service's audit log back as it was (the platform is shared by the package)."""
    with Session(engine) as session:
        rows = [e.model_dump() for e in session.exec(select(audit.AuditEntry))]
        head = audit.head(session)
    try:
        yield
    finally:
        with Session(engine) as session:
            session.exec(text("DELETE FROM audit_log"))
            session.add_all(audit.AuditEntry(**row) for row in rows)
            session.exec(
                text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1").bindparams(s=head.seq, h=head.hash)
            )
            session.commit()
            assert audit.verify(session).ok


def _scheduled_round(platform: Any, name: str) -> int:
    """Run the service's scheduled verify-and-anchor round now, on its own event loop."""
    rt = platform.services[name].runtime
    return asyncio.run_coroutine_threadsafe(audit_round(rt)(), rt.tasks[0].get_loop()).result(timeout=15)


def test_deleting_a_subjects_entries_and_rechaining_is_detected_on_every_read(platform):
    sub, other = new_sub(), new_sub()
    for who in (sub, other):
        grant(platform, who, "checkin")
        r = platform.consent.client.get("/v1/me/export", headers=platform.auth(who))  # check-in audits it
        assert r.status_code == 200, r.text
    read = platform.consent.client.get("/v1/me/access-log", headers=platform.auth(sub)).json()
    assert any(e["service"] == "checkin" for e in read["entries"]), read  # the access is there
    assert not [u for u in read["unavailable"] if u["reason"] == "integrity_failed"]

    engine = platform.services["checkin"].runtime.engine
    with _restored(engine):
        with Session(engine) as session:
            assert audit.verify(session).ok
            victim = platform.pseudonym(sub)
            session.exec(text("DELETE FROM audit_log WHERE subject = :s").bindparams(s=victim))
            _recompute_without_the_key(session)
            assert audit.verify(session).ok is False  # the recomputed chain is not under the key
            assert audit.CHAIN_INTACT._value.get() == 0  # the alerting gauge says so

        after = platform.consent.client.get("/v1/me/access-log", headers=platform.auth(sub))
        assert after.status_code == 200
        body = after.json()
        assert {"service": "checkin", "reason": "integrity_failed"} in body["unavailable"]
        assert body["complete"] is False  # the employee is told the log is not to be trusted


def test_cutting_off_the_newest_entries_is_detected_against_the_anchored_head(platform):
    """Truncation with the head moved back (what the key holder, or a restored backup, can do):
    a consistent, shorter chain. Only the anchor in the AUDIT stream shows what is missing."""
    sub = new_sub()
    grant(platform, sub, "checkin")
    for _ in range(3):
        r = platform.consent.client.get("/v1/me/export", headers=platform.auth(sub))  # check-in audits it
        assert r.status_code == 200, r.text
    engine = platform.services["checkin"].runtime.engine
    with _restored(engine):
        assert _scheduled_round(platform, "checkin") > 0
        anchored = platform.ops(lambda js: audit.last_anchor(js, "checkin"))
        with Session(engine) as session:
            assert anchored == audit.head(session)  # the round anchored the current head
            newest = anchored.seq
            cut = session.get(audit.AuditEntry, newest - 2)
            assert cut is not None
            session.exec(text("DELETE FROM audit_log WHERE seq > :s").bindparams(s=cut.seq))
            session.exec(
                text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1").bindparams(s=cut.seq, h=cut.hash)
            )
            session.commit()
            assert audit._walk(session, None).ok  # a valid chain: verification alone would pass
            verdict = audit.verify(session)
        assert (verdict.ok, verdict.reason, verdict.first_bad_seq) == (False, "behind the anchored head", newest - 1)

        # A restarted process knows nothing but what the stream holds: the round finds it there,
        # reports the chain broken and refuses to anchor the shortened head.
        audit._ANCHORS.clear()
        skipped = audit.ANCHORS.labels("skipped")._value.get()
        _scheduled_round(platform, "checkin")
        assert audit.CHAIN_INTACT._value.get() == 0
        assert audit.ANCHORS.labels("skipped")._value.get() == skipped + 1
        assert platform.ops(lambda js: audit.last_anchor(js, "checkin")) == anchored

        body = platform.consent.client.get("/v1/me/access-log", headers=platform.auth(sub)).json()
        assert {"service": "checkin", "reason": "integrity_failed"} in body["unavailable"]
        assert body["complete"] is False
