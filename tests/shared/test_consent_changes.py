"""Consent changes travel sealed (issue 11 item 4): ``consent.changed.v2`` keeps only the pseudonym
and the purpose in the clear, and every consumer reads it through ``consent_changes``, which
decides what an event whose subject's key is gone (erased) or replaced (erased, then back) means."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pytest

from shared.datakeys import CiphertextInvalid, SubjectKey
from shared.events import parse_event
from shared.events.consent import ConsentChange, ConsentChanged, ConsentChangedV2, Purpose, consent_changes

P, OTHER = "ab" * 32, "cd" * 32
AT = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


class Keys:
    """The bucket as a consumer reads it: one current key per subject, or none (erased)."""

    def __init__(self) -> None:
        self.keys: dict[str, SubjectKey] = {}

    def new(self, pseudonym: str) -> SubjectKey:
        self.keys[pseudonym] = SubjectKey.of(os.urandom(16).hex(), pseudonym, os.urandom(32))
        return self.keys[pseudonym]

    def get_blocking(self, pseudonym: str) -> SubjectKey | None:
        return self.keys.get(pseudonym)


def consumed(keys: Keys, event: ConsentChangedV2 | ConsentChanged) -> list[ConsentChange]:
    seen: list[ConsentChange] = []
    consent_changes(keys, lambda _s, change: seen.append(change))(None, parse_event(event.model_dump_json()))
    return seen


def test_only_pseudonym_and_purpose_are_in_the_clear_and_the_consumer_reads_the_rest():
    keys = Keys()
    event = ConsentChangedV2.of(keys.new(P), P, Purpose.checkin, "lapsed", 7, AT)
    body = json.loads(event.model_dump_json())
    assert set(body) == {"event_id", "type", "pseudonym", "purpose", "sealed"}
    assert event.subject == "consent.checkin.changed.v2"
    (change,) = consumed(keys, event)
    assert (change.state, change.policy_version, change.changed_at, change.erased) == ("lapsed", 7, AT, False)
    assert change.ended and change.event_id == event.event_id


def test_sealed_blocks_do_not_tell_states_apart_by_their_length():
    key = Keys().new(P)
    blobs = {
        state: ConsentChangedV2.of(key, P, Purpose.escalation, state, version, AT).sealed.blob
        for state, version in (("granted", 1), ("withdrawn", 12), ("lapsed", 3))
    }
    assert len({len(b) for b in blobs.values()}) == 1, {s: len(b) for s, b in blobs.items()}


def test_an_erased_subjects_change_reads_as_withdrawn_now():
    """Consent shreds the key as soon as an erasure commits, usually before its own ``withdrawn``
    events are consumed: whatever the event said, the consumer deletes what the purpose held."""
    keys = Keys()
    event = ConsentChangedV2.of(keys.new(P), P, Purpose.aggregate_insights, "granted", 1, AT)
    del keys.keys[P]
    before = datetime.now(UTC)
    (change,) = consumed(keys, event)
    assert change.erased and change.ended and change.state == "withdrawn" and change.policy_version is None
    assert change.changed_at >= before  # the week a retraction names is the one it is handled in


def test_a_change_from_before_an_erasure_is_ignored_once_the_subject_is_back():
    """Erased, then back (a new key): the old event's block names the old key; acting on it could
    delete what the subject gave since, and the erasure already deleted what it concerned."""
    keys = Keys()
    old = ConsentChangedV2.of(keys.new(P), P, Purpose.checkin, "withdrawn", 1, AT)
    keys.new(P)
    assert consumed(keys, old) == []


def test_a_block_moved_onto_another_event_does_not_open():
    keys = Keys()
    event = ConsentChangedV2.of(keys.new(P), P, Purpose.checkin, "withdrawn", 1, AT)
    moved = ConsentChangedV2.model_validate({**event.model_dump(), "event_id": uuid.uuid4()})
    with pytest.raises(CiphertextInvalid):  # tampering: the consumer dead-letters it
        consumed(keys, moved)


def test_a_v1_copy_still_in_the_stream_is_read_as_it_says():
    event = ConsentChanged(pseudonym=P, purpose=Purpose.checkin, state="withdrawn", policy_version=2, changed_at=AT)
    (change,) = consumed(Keys(), event)
    assert (change.pseudonym, change.purpose, change.state, change.policy_version) == (P, "checkin", "withdrawn", 2)
