"""Webhook building blocks: Retry-After parsing, secret encryption, schedule, schema vs models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlmodel import Session

from shared.webhooks import (
    WEBHOOK_TABLES,
    SecretBox,
    TargetPolicy,
    WebhookSettings,
    enqueue,
    envelope,
    generate_secret,
    parse_retry_after,
)
from shared.webhooks.secrets import SecretUnreadable


def test_retry_after_forms():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    for bad in (None, "", "-5", "soon", "1.5", "Mon, 99 Foo 2026"):
        assert parse_retry_after(bad, now) is None


def test_default_schedule_spans_about_a_day_in_ten_attempts():
    settings = WebhookSettings()
    assert settings.max_attempts == 10
    assert settings.retry_schedule[-1] == 24 * 3600
    assert [settings.delay_after(n) for n in (1, 2, 3)] == [5, 295, 1500]
    with pytest.raises(ValidationError):
        WebhookSettings(retry_schedule=[5, 10])
    with pytest.raises(ValidationError):
        WebhookSettings(retry_schedule=[0, 10, 5])
    with pytest.raises(ValidationError):
        WebhookSettings(allow_networks=["10.0.0.0/33"])


def test_secret_box_round_trip_and_tamper_detection():
    box = SecretBox(b"k" * 32)
    secret = generate_secret()
    stored = box.encrypt("sub_a", secret)
    assert box.decrypt("sub_a", stored) == secret
    with pytest.raises(SecretUnreadable):
        box.decrypt("sub_b", stored)  # a ciphertext moved to another row
    with pytest.raises(SecretUnreadable):
        SecretBox(b"j" * 32).decrypt("sub_a", stored)
    with pytest.raises(SecretUnreadable):
        box.decrypt("sub_a", stored[:-4] + "AAAA")
    with pytest.raises(ValueError):
        SecretBox(b"short")


@given(st.ip_addresses())
def test_address_rules_never_allow_non_public_addresses(ip):
    policy = TargetPolicy()
    allowed = policy.address_allowed(str(ip))
    if allowed:
        assert ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast)
        mapped = getattr(ip, "ipv4_mapped", None)
        assert mapped is None or (mapped.is_global and not mapped.is_private)


def test_enqueue_refuses_bad_types_and_payloads(engine):
    with Session(engine) as session:
        for event_type in ("Bad Type", "", "a..b", "x" * 121):
            with pytest.raises(ValueError):
                enqueue(session, event_type, {})
        with pytest.raises(ValueError):
            enqueue(session, "a.b", {"when": datetime.now()})
        with pytest.raises(ValueError):
            enqueue(session, "a.b", {"blob": "x" * 300_000})
        assert enqueue(session, "a.b", {"ok": True}) == []  # no subscriptions: nothing queued


def test_envelope_is_the_standard_webhooks_shape():
    body = json.loads(envelope("a.b", {"k": 1}, datetime(2026, 5, 1, 8, 30, 15, 123, tzinfo=UTC)))
    assert body == {"type": "a.b", "timestamp": "2026-05-01T08:30:15Z", "data": {"k": 1}}


def test_the_migration_creates_exactly_the_models_tables(engine):
    inspector = sa.inspect(engine)
    for table in WEBHOOK_TABLES:
        migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(migrated) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert migrated[column.name]["nullable"] == column.nullable, (table.name, column.name)
        fks = {
            (fk["referred_table"], tuple(fk["constrained_columns"])) for fk in inspector.get_foreign_keys(table.name)
        }
        assert fks == {(fk.column.table.name, (fk.parent.name,)) for fk in table.foreign_keys}
    indexes = {i["name"] for i in inspector.get_indexes("webhook_delivery")}
    assert "ix_webhook_delivery_due" in indexes
