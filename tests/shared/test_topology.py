"""The topology is internally consistent and encodes the purpose limits the broker enforces."""

from __future__ import annotations

import re

import pytest

from shared import topology as t
from shared.settings import SERVICES


def _overlap(a: str, b: str) -> bool:
    """Whether two stream subject patterns can match a common subject (enough for our patterns)."""
    ta, tb = a.split("."), b.split(".")
    for x, y in zip(ta, tb, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(ta) == len(tb)


@pytest.mark.parametrize(
    ("service", "filt", "expected"),
    [
        ("recommender", "checkin.personalization.>", "recommender__checkin_personalization"),
        ("checkin", "consent.>", "checkin__consent"),
        ("aggregator", "hris.org.>", "aggregator__hris_org"),
        ("escalation", "checkin.*.flagged.v1", "escalation__checkin_any_flagged_v1"),
    ],
)
def test_consumer_name(service: str, filt: str, expected: str) -> None:
    assert t.consumer_name(service, filt) == expected


def test_consumer_names_are_unique_and_valid_nats_names() -> None:
    names = [c.name for c in t.CONSUMERS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names)


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        ("checkin.personalization.submitted.v1", "CHECKIN"),
        ("consent.granted.v1", "CONSENT"),
        ("consent.dlq.checkin.personalization.submitted.v1", "CONSENT"),
        ("subject.erasure.requested.v1", "SUBJECT"),
        ("hris.org.changed.v1", "HRIS"),
        ("contribution.mood.v1", "CONTRIBUTION"),
        ("escalation.erasure.erased.v1", "ESCALATION"),
        ("checkin.>", "CHECKIN"),
    ],
)
def test_stream_for_subject(subject: str, stream: str) -> None:
    assert t.stream_for_subject(subject).name == stream


@pytest.mark.parametrize(
    "subject",
    ["unknown.x.v1", "checkin", "subject.export.checkin.v1", "subject.accesslog.aggregator.v1"],
)
def test_stream_for_subject_raises_key_error(subject: str) -> None:
    with pytest.raises(KeyError):
        t.stream_for_subject(subject)


def test_request_reply_subjects_are_never_captured_by_a_stream() -> None:
    # A stream capturing a request would answer it with a PubAck instead of the service.
    for service in SERVICES:
        for subject in (t.export_subject(service), t.access_log_subject(service)):
            with pytest.raises(KeyError):
                t.stream_for_subject(subject)
    assert t.export_subject("checkin") == "subject.export.checkin.v1"
    assert t.access_log_subject("checkin") == "subject.accesslog.checkin.v1"


def test_stream_subjects_do_not_overlap() -> None:
    patterns = [(s.name, p) for s in t.STREAMS.values() for p in s.subjects]
    for i, (na, a) in enumerate(patterns):
        for nb, b in patterns[i + 1 :]:
            assert not _overlap(a, b), f"{na} {a} overlaps {nb} {b}"


def test_every_consumer_reads_an_existing_stream_within_its_subjects() -> None:
    for c in t.CONSUMERS:
        assert c.service in SERVICES
        assert c.stream in t.STREAMS
        assert t.stream_for_subject(c.filter_subject).name == c.stream, c


def test_streams_are_declared_by_known_services_and_each_service_owns_its_prefix() -> None:
    for spec in t.STREAMS.values():
        assert spec.declared_by and set(spec.declared_by) <= set(SERVICES)
        assert spec.name == spec.name.upper()
    for service in SERVICES:
        own = t.STREAMS[service.upper()]
        assert own.subjects == (f"{service}.>",) and own.declared_by == (service,)
    assert [s.name for s in t.streams_declared_by("consent")] == ["CONSENT", "SUBJECT", "HRIS", "AUDIT"]
    assert [s.name for s in t.streams_declared_by("aggregator")] == ["AGGREGATOR", "CONTRIBUTION", "AUDIT"]


def test_dead_letters_and_erasure_acks_stay_in_the_services_own_stream() -> None:
    for service in SERVICES:
        dlq = t.dlq_subject(service, "checkin.personalization.submitted.v1")
        assert dlq == f"{service}.dlq.checkin.personalization.submitted.v1"
        assert t.stream_for_subject(dlq).declared_by == (service,)
        assert t.stream_for_subject(f"{service}.erasure.erased.v1").declared_by == (service,)


def test_only_the_aggregator_reads_contributions() -> None:
    readers = {c.service for c in t.CONSUMERS if c.stream == "CONTRIBUTION"}
    assert readers == {"aggregator"}


def test_aggregator_never_reads_checkin() -> None:
    assert not [c for c in t.consumers_for("aggregator") if c.stream == "CHECKIN"]
    assert all(not c.filter_subject.startswith("checkin.") for c in t.consumers_for("aggregator"))


def test_purpose_limited_consumers() -> None:
    by_service = {s: {(c.stream, c.filter_subject) for c in t.consumers_for(s)} for s in SERVICES}
    assert ("CHECKIN", "checkin.personalization.>") in by_service["recommender"]
    assert ("CHECKIN", "checkin.escalation.>") in by_service["escalation"]
    # Nobody reads a whole producer stream except consent state and contributions.
    for c in t.CONSUMERS:
        if c.filter_subject.count(".") == 1:
            assert c.filter_subject in ("consent.>", "contribution.>"), c
    # consent collects every other service's erasure acks; every other service hears erasures.
    assert {c.filter_subject for c in t.consumers_for("consent")} == {
        f"{s}.erasure.>" for s in SERVICES if s != "consent"
    }
    for service in SERVICES:
        if service != "consent":
            assert ("SUBJECT", "subject.erasure.>") in by_service[service]


def test_kv_bucket() -> None:
    assert t.KV_BUCKET == "consent"
    assert t.KV_STREAM == "KV_consent"
    assert set(t.KV_WATCHERS) == {"checkin", "recommender", "escalation"}


def test_every_stream_keeps_messages_long_enough_for_its_consumers_and_no_longer():
    from datetime import timedelta

    from services.consent.config import ConsentSettings

    resend = timedelta(seconds=ConsentSettings.model_fields["erasure_retry_after_seconds"].default)
    read = {c.stream for c in t.CONSUMERS}
    for spec in t.STREAMS.values():
        assert timedelta(0) < spec.max_age <= timedelta(days=31), spec.name  # bounded: never forever
        if spec.name == "SUBJECT":  # re-published until acknowledged: it needs to outlive a resend
            assert spec.max_age >= 100 * resend
        elif spec.name in read:
            assert spec.max_age >= t.CONSUMER_OUTAGE, spec.name
