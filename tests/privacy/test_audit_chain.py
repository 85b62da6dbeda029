"""Issue 11 item 7: the access log could be rewritten, and nobody checked it.

The attack: someone with write access to a service's database (not its secrets) deletes a
subject's entries and recomputes the chain and the head so that it still links up. With the plain
SHA-256 chain this passed ``verify()`` and nothing ever called it. Now the chain is an HMAC under
the service's ``audit_key``, every read of the log verifies it, and a rewrite is reported.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from sqlalchemy import text
from sqlmodel import Session, select

from shared import audit
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
