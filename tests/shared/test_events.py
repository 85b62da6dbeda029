import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.datakeys import SubjectKey
from shared.events import (
    EVENT_TYPES,
    ConsentChangedV2,
    ErasureRequested,
    Purpose,
    SubjectErased,
    json_schemas,
    parse_event,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"
PSEUDONYM = "ab" * 32


def test_json_schemas_match_the_committed_snapshot():
    """A contract change must come with its regenerated schema (`make schemas`) — and a new .vN."""
    committed = {p.stem: json.loads(p.read_text()) for p in DOCS.glob("*.json")}
    assert committed == json_schemas()


def test_every_type_is_versioned_and_subject_names_follow_the_convention():
    for name in EVENT_TYPES:
        assert name.rsplit(".", 1)[-1].startswith("v")
    key = SubjectKey.of("0" * 32, PSEUDONYM, bytes(32))
    e = ConsentChangedV2.of(key, PSEUDONYM, Purpose.escalation, "withdrawn", 2, datetime.now(UTC))
    assert e.subject == "consent.escalation.changed.v2"
    assert SubjectErased(request_id=uuid.uuid4(), service="checkin", records=1).subject == "checkin.erasure.erased.v1"
    assert (
        ErasureRequested(request_id=uuid.uuid4(), pseudonym=PSEUDONYM, requested_at=datetime.now(UTC)).subject
        == "subject.erasure.requested.v1"
    )


def test_round_trip_through_the_union():
    e = ErasureRequested(request_id=uuid.uuid4(), pseudonym=PSEUDONYM, requested_at=datetime.now(UTC))
    assert parse_event(e.model_dump_json()) == e


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "consent.changed.v1"}',
        b'{"type": "consent.changed.v2"}',
        b'{"type": "nope.v1"}',
        b"not json",
    ],
)
def test_invalid_bodies_are_rejected(body):
    with pytest.raises(ValidationError):
        parse_event(body)


def test_unknown_fields_are_rejected():
    e = ErasureRequested(request_id=uuid.uuid4(), pseudonym=PSEUDONYM, requested_at=datetime.now(UTC))
    data = json.loads(e.model_dump_json())
    data["note"] = "free text must never ride along"
    with pytest.raises(ValidationError):
        parse_event(json.dumps(data))


def test_pseudonym_must_be_a_pseudonym():
    with pytest.raises(ValidationError):
        ErasureRequested(request_id=uuid.uuid4(), pseudonym="E123", requested_at=datetime.now(UTC))
