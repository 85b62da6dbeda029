"""The consent service's pieces on a real (migrated) database, without NATS."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import Session

from services.consent.config import ConsentSettings
from services.consent.consents.schemas import ConsentGrant
from services.consent.consents.service import grant
from services.consent.deps import ConsentContext, DirectoryCipher
from services.consent.directory.schemas import ContactPreferences
from services.consent.directory.service import release_contact
from services.consent.policy.schemas import REQUIRED_LANGUAGES, PolicyVersionCreate
from services.consent.stats import service as stats
from shared.crypto import CiphertextInvalid, Keyring
from shared.db import make_engine, run_migrations
from shared.errors import Conflict, NotFound
from shared.events.consent import Purpose
from shared.settings import PlatformSettings
from tests.consentevents import KeysWithoutNats

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "consent"


def test_policy_seed_covers_every_purpose_in_every_required_language():
    seed = json.loads((PACKAGE / "policy.json").read_text())["purposes"]
    assert set(seed) == {p.value for p in Purpose}
    for terms in seed.values():
        body = PolicyVersionCreate.model_validate({k: v for k, v in terms.items()})
        assert set(REQUIRED_LANGUAGES) <= set(body.texts.by_language())


def test_directory_cipher_binds_each_value_to_its_subject_and_field():
    cipher = DirectoryCipher(Keyring("k1", {"k1": b"k" * 32}))
    sealed = cipher.seal("a" * 64, "phone", "+447700900123")
    assert b"+447700900123" not in sealed
    assert cipher.open("a" * 64, "phone", sealed) == "+447700900123"
    for subject, field in (("b" * 64, "phone"), ("a" * 64, "email")):
        with pytest.raises(CiphertextInvalid):
            cipher.open(subject, field, sealed)
    with pytest.raises(CiphertextInvalid):
        DirectoryCipher(Keyring("k1", {"k1": b"x" * 32})).open("a" * 64, "phone", sealed)
    assert cipher.seal("a" * 64, "phone", "same") != cipher.seal("a" * 64, "phone", "same")  # fresh nonces


def test_contact_preferences_need_the_preferred_channel():
    with pytest.raises(ValueError):
        ContactPreferences(preferred_channel="email", phone="+447700900123")
    with pytest.raises(ValueError):
        ContactPreferences.model_validate({"preferred_channel": "sms", "phone": "0123", "note": "free text"})
    assert ContactPreferences(preferred_channel="sms", phone="+447700900123").phone == "+447700900123"


@pytest.fixture
def ctx(tmp_path) -> ConsentContext:
    platform = PlatformSettings(mode="embedded", data_dir=tmp_path / "data")
    own = ConsentContext.from_settings(ConsentSettings(platform=platform, database_url="sqlite://"))
    return replace(own, event_keys=KeysWithoutNats())  # type: ignore[arg-type]


@pytest.fixture
def session(db_url) -> Session:
    run_migrations(db_url, PACKAGE / "migrations")
    engine = make_engine(db_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_consent_rates_are_a_stored_noised_release_suppressed_below_k(session, ctx):
    """Issue 11.5: rates were exact and live for any group; now one noised, stored release per
    ISO week under the shared release rules (the differencing attacks: test_stats_releases.py)."""
    from datetime import UTC, datetime

    from shared.release.rules import ReleaseRules

    quiet = ReleaseRules(k=5, rho_count=8.0, rho_sum=8.0, rho_cap=100.0)
    for i in range(4):
        grant(session, ctx, f"E{i}", Purpose.checkin, ConsentGrant(policy_version=1))
    session.commit()
    small = stats.consent_rates(session, quiet, datetime(2026, 3, 2, tzinfo=UTC))
    assert small.suppressed is True and small.group_size is None and small.reason == "below_k"
    for i in range(4, 7):
        grant(session, ctx, f"E{i}", Purpose.checkin, ConsentGrant(policy_version=1))
        if i < 6:
            grant(session, ctx, f"E{i}", Purpose.personalization, ConsentGrant(policy_version=1))
    session.commit()
    rates = stats.consent_rates(session, quiet, datetime(2026, 3, 9, tzinfo=UTC))
    assert rates.group_size == 7 and not rates.suppressed and rates.period == "2026-W11"
    by = {r.purpose: r for r in rates.purposes}
    assert by[Purpose.checkin].rate == 1.0 and by[Purpose.personalization].rate == pytest.approx(2 / 7, abs=0.05)
    low, high = by[Purpose.personalization].interval_95 or (0, 0)
    assert low < 2 / 7 < high


def test_grant_of_a_stale_version_and_release_without_contact_are_refused(session, ctx):
    with pytest.raises(Conflict):
        grant(session, ctx, "E1", Purpose.checkin, ConsentGrant(policy_version=2))
    session.rollback()
    grant(session, ctx, "E1", Purpose.escalation, ConsentGrant(policy_version=1))
    session.commit()
    with pytest.raises(NotFound):
        release_contact(session, ctx.pseudonym("E1"), "C1", uuid.uuid4(), ctx=ctx)
    with pytest.raises(ValueError):
        release_contact(session, ctx.pseudonym("E1"), "C1", "not a case id", ctx=ctx)
