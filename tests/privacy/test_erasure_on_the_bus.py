"""Issue 11 item 4: after erasure, nothing the broker keeps says anything about the subject.

The attack: read every stream, both KV buckets and the dead letters raw as the ``ops`` user (full
access, as an operator or a stolen broker disk would) after a completed erasure. Before sealing,
CHECKIN kept the pseudonym with ``severity: critical``, its reasons and needs, the consent bucket
kept the subject's keys.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats

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
