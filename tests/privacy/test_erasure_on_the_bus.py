"""Issue 11 item 4: after erasure, nothing the broker keeps says anything about the subject.

The attack: read every stream, both KV buckets and the dead letters raw as the ``ops`` user (full
access, as an operator or a stolen broker disk would) after a completed erasure. Before sealing,
CHECKIN kept the pseudonym with ``severity: critical``, its reasons and needs, the consent bucket
kept the subject's keys, CONSENT kept the subject's consent history (what they chose, under which
policy version, when).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import nats
from sqlmodel import Session

from services.recommender.profiles.models import HrisProfile
from shared.events import parse_event
from shared.topology import dlq_subject
from tests.consent.conftest import Platform, new_sub, wait_until
from tests.consent.test_consent_flow import grant
from tests.consent.test_erasure import erasure_status, request_erasure
from tests.privacy.bus_scan import BUCKETS, Stored, about, event_key_as_ops, every_message

CRISIS = {"who5_1": 1, "who5_2": 1, "who5_3": 1, "who5_4": 1, "who5_5": 1, "mood": 1}
NOTE = "quokka-lantern: I can't go on like this, I want to die"
# Facts of this subject's check-in that must not be readable once they are erased.
FACTS = ("critical", "crisis_language", "who5_very_low", "contact_requested", "low_mood", "energy", '"GB"', "quokka")
# Streams whose copies this test proves unreadable.
SCANNED = {"CHECKIN", "ESCALATION", *BUCKETS}


def messages(platform: Platform) -> list[Stored]:
    return asyncio.run(every_message(platform.nats.connect_kwargs("ops")))


def event_key(platform: Platform, pseudonym: str) -> Any:
    kek = platform.settings.secret("event_key_kek")
    return asyncio.run(event_key_as_ops(platform.nats.connect_kwargs("ops"), kek, pseudonym))


def in_the_clear(data: bytes) -> str:
    """The message with its ciphertext removed: what anyone reading the stream can read."""
    try:
        body = json.loads(data)
    except ValueError:
        return data.decode(errors="replace")

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("<ciphertext>" if k == "blob" else strip(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(body))


def dead_letter_as_escalation(platform: Platform, stored: Stored) -> None:
    """What ``shared.bus.consumer`` does with a message it cannot apply: the same bytes, in the
    consuming service's own stream under ``<service>.dlq.<subject>``."""

    async def body() -> None:
        nc = await nats.connect(**platform.nats.connect_kwargs("escalation"))
        try:
            await nc.jetstream().publish(dlq_subject("escalation", stored.subject), stored.data)
        finally:
            await nc.close()

    asyncio.run(body())


def test_after_erasure_no_stream_bucket_or_dead_letter_reveals_the_subject(platform):
    sub = new_sub()
    p = platform.pseudonym(sub)
    for purpose in ("checkin", "personalization", "escalation"):
        grant(platform, sub, purpose)
    wait_until(lambda: all(platform.gates(p, "escalation").values()))
    body = {"answers": CRISIS, "note": NOTE, "talk_to_someone": True, "share_note": True, "country": "GB"}
    assert (
        platform.services["checkin"].client.post("/v1/checkins", json=body, headers=platform.auth(sub)).status_code
        == 201
    )

    # While the subject exists, the consumers' copies open: severity, reasons and needs are there.
    flows = wait_until(lambda: [m for m in about(messages(platform), p) if m.stream == "CHECKIN"] if len(
        [m for m in about(messages(platform), p) if m.stream == "CHECKIN"]) >= 2 else None)  # fmt: skip
    key = event_key(platform, p)
    assert key is not None
    opened = {m.subject: parse_event(m.data).open(key) for m in flows}  # type: ignore[attr-defined]
    flag = next(v for s, v in opened.items() if s.startswith("checkin.escalation."))
    assert flag.severity == "critical" and "crisis_language" in flag.reasons and flag.country == "GB"
    assert "low_mood" in next(v for s, v in opened.items() if s.startswith("checkin.personalization.")).needs
    dead_letter_as_escalation(platform, next(m for m in flows if m.subject.startswith("checkin.escalation.")))

    request_id = request_erasure(platform, sub)
    wait_until(lambda: erasure_status(platform, sub, request_id)["status"] == "completed", 20)

    left = about(messages(platform), p)
    scanned = [m for m in left if m.stream in SCANNED]
    assert {m.stream for m in scanned} >= {"CHECKIN", "ESCALATION"}  # the copies are still there ...
    for m in scanned:  # ... and none of them says anything about the subject
        clear = in_the_clear(m.data)
        assert not [f for f in FACTS if f in clear], (m.stream, m.subject, clear)
    # No value is left for the subject in either bucket (a purge leaves an empty marker at most) ...
    assert not [m for m in left if m.stream in BUCKETS and m.data], [(m.stream, m.subject) for m in left]
    # ... so the event key is gone for everyone, ops included: no sealed copy opens again.
    assert event_key(platform, p) is None


def test_after_erasure_the_hris_stream_says_nothing_about_the_subject(platform):
    """The HRIS import's copies: org unit and dates (``hris.subject.*``) and role family, country,
    language (``hris.personalization.*``) stayed readable in the HRIS stream after erasure."""
    sub, unit = new_sub(), f"ou-quokka-{uuid.uuid4().hex[:8]}"
    p = platform.pseudonym(sub)
    grant(platform, sub, "personalization")
    wait_until(lambda: all(platform.gates(p, "personalization").values()))
    person = {"employee_id": sub, "org_unit": unit, "role_family": "lighthouse-keeper", "country": "IS"}
    joined = [
        {"type": "org_unit.created", "org_unit": {"org_unit_id": unit}},
        {"type": "employee.created", "employee": {**person, "effective_from": "2026-02-03", "language": "is"}},
    ]
    assert hris_import(platform, joined) == 3  # the unit, the assignment, the profile
    # The recommender got the profile (opened under the key, as only its consumers can).
    assert wait_until(lambda: recommender_profile(platform, p)) == ("lighthouse-keeper", "IS", "is")
    assert hris_import(platform, [{"type": "employee.left", "employee_id": sub, "left_on": "2026-11-30"}]) == 1
    facts = (unit, "lighthouse-keeper", '"IS"', '"is"', "2026-02-03", "2026-11-30")

    def hris_copies() -> list[Stored]:
        return [m for m in about(messages(platform), p) if m.stream == "HRIS"]

    copies = wait_until(lambda: (found := hris_copies()) and len(found) >= 3 and found)
    key = event_key(platform, p)  # while the subject exists, its consumers open every copy
    events: list[Any] = [parse_event(m.data) for m in copies]
    opened = json.dumps([(e.open(key) if hasattr(e, "sealed") else e).model_dump(mode="json") for e in events])
    assert all(f.strip('"') in opened for f in facts), opened

    request_id = request_erasure(platform, sub)
    wait_until(lambda: erasure_status(platform, sub, request_id)["status"] == "completed", 20)

    left = hris_copies()
    assert {m.subject.rsplit(".", 1)[0] for m in left} >= {"hris.subject.assigned", "hris.personalization.profile"}
    for m in left:  # the copies are still there, but say nothing a reader of the stream could use
        clear = in_the_clear(m.data)
        assert not [f for f in facts if f in clear], (m.subject, clear)
    assert event_key(platform, p) is None  # and nobody can open them again


def test_after_erasure_the_consent_stream_says_nothing_about_the_subjects_choices(platform):
    """``consent.changed``: the state, policy version and time of each of the subject's consent
    changes stayed readable in the CONSENT stream after erasure (until its 7-day max_age)."""
    sub = new_sub()
    p = platform.pseudonym(sub)
    for purpose in ("checkin", "personalization", "aggregate_insights"):
        grant(platform, sub, purpose)
    withdraw(platform, sub, "personalization")
    wait_until(lambda: all(platform.gates(p, "checkin").values()))
    wait_until(lambda: not any(platform.gates(p, "personalization").values()))

    def consent_copies() -> list[Stored]:
        return [m for m in about(messages(platform), p) if m.stream == "CONSENT"]

    copies = wait_until(lambda: (found := consent_copies()) and len(found) >= 4 and found)
    key = event_key(platform, p)  # while the subject exists, its consumers read every change
    events: list[Any] = [parse_event(m.data) for m in copies]
    read = [(e.open(key) if hasattr(e, "sealed") else e).model_dump(mode="json") for e in events]
    assert sorted(r["state"] for r in read) == ["granted", "granted", "granted", "withdrawn"], read

    request_id = request_erasure(platform, sub)
    wait_until(lambda: erasure_status(platform, sub, request_id)["status"] == "completed", 20)

    # The copies are still there (and the erasure's own withdrawals of checkin, aggregate_insights) ...
    left = wait_until(lambda: (found := consent_copies()) and len(found) >= 6 and found)
    for m in left:  # ... but none says what the subject chose, under which version, or when
        clear = in_the_clear(m.data)
        said = [f for f in ("granted", "withdrawn", "lapsed", "state", "policy_version", "changed_at") if f in clear]
        assert not said and not re.search(r"\d{4}-\d{2}-\d{2}T", clear), (m.subject, clear)
    # Nor does a sealed block's length: "granted" and "withdrawn" seal to blocks of one length.
    assert len({len(json.loads(m.data)["sealed"]["blob"]) for m in left}) == 1
    assert event_key(platform, p) is None  # and nobody can open them again


def withdraw(platform: Platform, sub: str, purpose: str) -> None:
    r = platform.consent.client.delete(f"/v1/me/consents/{purpose}", headers=platform.auth(sub))
    assert r.status_code == 200, r.text


def hris_import(platform: Platform, events: list[dict[str, Any]]) -> int:
    r = platform.consent.client.post(
        "/v1/hris/import", json={"events": events}, headers=platform.auth("hr-bot", "integration")
    )
    assert r.status_code == 200, r.text
    return int(r.json()["published"])


def recommender_profile(platform: Platform, pseudonym: str) -> tuple[str | None, ...] | None:
    with Session(platform.services["recommender"].runtime.engine) as session:
        row = session.get(HrisProfile, pseudonym)
        return (row.role_family, row.country, row.language) if row else None
