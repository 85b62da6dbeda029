"""Per-subject data keys: binding, wrapping, rotation (the rewrap command), destruction."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import SecretStr
from sqlmodel import Session, select

from services.checkin.config import CheckinSettings
from services.checkin.rewrap import main as rewrap_main
from shared.datakeys import (
    CiphertextInvalid,
    DataKey,
    DataKeyStore,
    KeyDestroyed,
    MasterKeys,
    MasterKeyUnavailable,
)

ALICE, BOB = "a1" * 32, "b2" * 32
OLD, NEW = "o" * 40, "n" * 40


def store(current="k1", **keys: str) -> DataKeyStore:
    return DataKeyStore(MasterKeys(current, {k: v.encode() for k, v in keys.items()}))


def test_ciphertext_is_bound_to_row_field_and_subject(engine):
    keys = store(k1=OLD)
    alice = keys.get_or_create(engine, ALICE)
    blob = alice.seal(b"my note", "checkin", "row1", "note")
    assert alice.open(blob, "checkin", "row1", "note") == b"my note"
    for context in (("checkin", "row2", "note"), ("checkin", "row1", "payload"), ("trend", "row1", "note")):
        with pytest.raises(CiphertextInvalid):
            alice.open(blob, *context)
    bob = keys.get_or_create(engine, BOB)
    with pytest.raises(CiphertextInvalid):
        bob.open(blob, "checkin", "row1", "note")  # another subject's key
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(CiphertextInvalid):
        alice.open(tampered, "checkin", "row1", "note")


def test_wrapped_key_is_bound_to_its_subject(engine):
    keys = store(k1=OLD)
    keys.get_or_create(engine, ALICE)
    keys.get_or_create(engine, BOB)
    with Session(engine) as session:
        a, b = (session.exec(select(DataKey).where(DataKey.pseudonym == p)).one() for p in (ALICE, BOB))
        a.wrapped, b.wrapped = b.wrapped, a.wrapped  # swap wrapped keys between rows
        session.add(a)
        session.add(b)
        session.commit()
    fresh = store(k1=OLD)
    with Session(engine) as session, pytest.raises(CiphertextInvalid):
        fresh.get(session, ALICE)


def test_concurrent_first_use_agrees_on_one_key(engine):
    keys = [store(k1=OLD) for _ in range(4)]  # four "replicas" with cold caches
    got = []
    threads = [threading.Thread(target=lambda k=k: got.append(k.get_or_create(engine, ALICE).key_id)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    with Session(engine) as session:
        assert len(session.exec(select(DataKey)).all()) == 1


def test_destroyed_key_makes_old_ciphertext_unreadable(engine):
    keys = store(k1=OLD)
    blob = keys.get_or_create(engine, ALICE).seal(b"secret", "checkin", "r", "note")
    with Session(engine) as session:
        assert keys.destroy(session, ALICE) == 1
        session.commit()
    assert keys.cached(ALICE) is None
    with Session(engine) as session:
        assert store(k1=OLD).get(session, ALICE) is None
        with pytest.raises(KeyDestroyed):
            keys.require(session, ALICE)
    # A new key for the same subject later does not open the old ciphertext either.
    with pytest.raises(CiphertextInvalid):
        keys.get_or_create(engine, ALICE).open(blob, "checkin", "r", "note")


def test_rewrap_command_moves_every_key_to_the_current_master_key(engine, db_url, tmp_path, monkeypatch):
    old = store("k1", k1=OLD)
    blobs = {p: old.get_or_create(engine, p).seal(p.encode(), "t", "r", "f") for p in (ALICE, BOB)}
    # Without the old master key, the new one alone cannot unwrap.
    with Session(engine) as session, pytest.raises(MasterKeyUnavailable):
        store("k2", k2=NEW).get(session, ALICE)

    monkeypatch.setenv("KINWELL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KINWELL_MASTER_KEY", NEW)
    monkeypatch.setenv("KINWELL_MASTER_KEY_ID", "k2")
    monkeypatch.setenv("KINWELL_OLD_MASTER_KEYS", json.dumps({"k1": OLD}))
    monkeypatch.setenv("KINWELL_CHECKIN_DATABASE_URL", db_url)
    assert CheckinSettings().platform.old_master_keys == {"k1": SecretStr(OLD)}
    assert rewrap_main([]) == 0
    assert rewrap_main([]) == 0  # idempotent

    new_only = store("k2", k2=NEW)
    with Session(engine) as session:
        assert {k.kek_id for k in session.exec(select(DataKey))} == {"k2"}
        for p, blob in blobs.items():
            assert new_only.require(session, p).open(blob, "t", "r", "f") == p.encode()


def test_master_keys_refuse_short_or_missing_current_key():
    with pytest.raises(ValueError):
        MasterKeys("k1", {"k1": b"short"})
    with pytest.raises(ValueError):
        MasterKeys("k2", {"k1": OLD.encode()})
