"""Keyed hashing and the one envelope (shared.crypto), including data sealed before it."""

import base64
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.consent.deps import DirectoryCipher
from shared.crypto import (
    CiphertextInvalid,
    Envelope,
    Keyring,
    UnknownKeyId,
    aad,
    key_id_of,
    period_token,
    pseudonym,
)
from shared.datakeys import DataKey, MasterKeys, SubjectKey
from shared.webhooks.secrets import SecretBox

KEY = b"k" * 32


def test_pseudonym_is_stable_keyed_and_tenant_scoped():
    p = pseudonym(KEY, "acme", "E123")
    assert p == pseudonym(KEY, "acme", "E123") and len(p) == 64
    assert p != pseudonym(KEY, "globex", "E123")
    assert p != pseudonym(b"o" * 32, "acme", "E123")
    assert "E123" not in p


def test_period_tokens_differ_between_periods_and_subjects():
    p = pseudonym(KEY, "acme", "E123")
    w1, w2 = period_token(KEY, p, "2026-W47"), period_token(KEY, p, "2026-W48")
    assert w1 != w2
    assert w1 == period_token(KEY, p, "2026-W47")
    assert w1 != period_token(KEY, pseudonym(KEY, "acme", "E124"), "2026-W47")


# --- the envelope (issue 12.5) -----------------------------------------------------------------


OLD, NEW = b"o" * 40, b"n" * 40


def test_envelope_round_trip_binds_associated_data_and_names_its_key():
    env = Keyring("k1", {"k1": OLD}).envelope("notes")
    blob = env.seal(b"hello", aad("t", "row1"))
    assert key_id_of(blob) == "k1" and b"hello" not in blob
    assert env.open(blob, aad("t", "row1")) == b"hello"
    for wrong in (aad("t", "row2"), aad("t", "row1", ""), aad("trow1")):
        with pytest.raises(CiphertextInvalid):
            env.open(blob, wrong)
    with pytest.raises(CiphertextInvalid):
        env.open(blob[:-1] + bytes([blob[-1] ^ 1]), aad("t", "row1"))
    assert env.seal(b"x", b"") != env.seal(b"x", b"")  # fresh nonces


def test_the_key_id_in_the_header_is_authenticated():
    ring = Keyring("k2", {"k1": OLD, "k2": NEW})
    blob = ring.envelope("p").seal(b"v", b"ctx")
    forged = blob.replace(b"k2", b"k1", 1)  # claim the other key
    with pytest.raises(CiphertextInvalid):
        ring.envelope("p").open(forged, b"ctx")


def test_rotation_seals_with_the_new_key_and_opens_with_every_held_key():
    old = Keyring("k1", {"k1": OLD}).envelope("p")
    rotated = Keyring("k2", {"k2": NEW, "k1": OLD}).envelope("p")
    blob = old.seal(b"v", b"ctx")
    assert rotated.open(blob, b"ctx") == b"v" and not rotated.is_current(blob)
    resealed = rotated.reseal(blob, b"ctx")
    assert key_id_of(resealed) == "k2" and rotated.is_current(resealed)
    with pytest.raises(UnknownKeyId):
        Keyring("k2", {"k2": NEW}).envelope("p").open(blob, b"ctx")  # old key dropped too early
    assert Keyring("k2", {"k2": NEW}).envelope("p").open(resealed, b"ctx") == b"v"


def test_purposes_never_share_a_key():
    ring = Keyring("k1", {"k1": OLD})
    blob = ring.envelope("consent-directory").seal(b"v", b"ctx")
    with pytest.raises(CiphertextInvalid):
        ring.envelope("webhook-secret").open(blob, b"ctx")


def test_associated_data_parts_cannot_alias():
    assert aad("a|b", "c") != aad("a", "b|c") and aad("ab", "") != aad("a", "b")


def test_envelopes_refuse_bad_keys_and_ids():
    with pytest.raises(ValueError):
        Keyring("k1", {"k1": b"short"})
    with pytest.raises(ValueError):
        Keyring("k2", {"k1": OLD})
    with pytest.raises(ValueError):
        Envelope.single("k1", b"x" * 16)  # AES-256 only
    with pytest.raises(ValueError):
        Envelope.single("", os.urandom(32))


# --- data stored before the envelope still opens --------------------------------------------------


def _hkdf(root: bytes, info: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root))


def test_v1_wrapped_data_keys_and_fields_still_open_and_rewrap_to_v2():
    dek, nonce = os.urandom(32), os.urandom(12)
    kek = _hkdf(OLD, b"kinwell data-key KEK v1|k1")
    wrapped = b"\x01" + nonce + kek.encrypt(nonce, dek, f"kinwell-dek|{'a' * 64}|kid1|k1".encode())
    row = DataKey(key_id="kid1", pseudonym="a" * 64, kek_id="k1", wrapped=wrapped)
    master = MasterKeys("k2", {"k1": OLD, "k2": NEW})
    assert master.unwrap(row) == dek and not master.is_current(row)
    field = b"\x01" + nonce + AESGCM(dek).encrypt(nonce, b"note", f"kinwell|checkin|r1|note|{'a' * 64}".encode())
    key = SubjectKey.of("kid1", "a" * 64, dek)
    assert key.open(field, "checkin", "r1", "note") == b"note"
    assert key_id_of(key.seal(b"note", "checkin", "r1", "note")) == "kid1"


def test_v1_directory_values_still_open_under_a_retired_master_key():
    nonce = os.urandom(12)
    legacy = nonce + _hkdf(OLD, b"consent-directory").encrypt(nonce, b"E123", f"{'a' * 64}|employee_id".encode())
    cipher = DirectoryCipher(Keyring("k2", {"k2": NEW, "k1": OLD}))
    assert cipher.open("a" * 64, "employee_id", legacy) == "E123"
    resealed = cipher.reseal("a" * 64, "employee_id", legacy)
    assert resealed is not None and key_id_of(resealed) == "k2"
    assert DirectoryCipher(Keyring("k2", {"k2": NEW})).open("a" * 64, "employee_id", resealed) == "E123"
    assert cipher.reseal("a" * 64, "employee_id", resealed) is None
    with pytest.raises(CiphertextInvalid):
        DirectoryCipher(Keyring("k2", {"k2": NEW})).open("a" * 64, "employee_id", legacy)


def test_v1_webhook_secrets_still_open_with_the_key_of_their_id():
    nonce = os.urandom(12)
    sealed = _hkdf(OLD, b"kinwell webhook signing secret v1").encrypt(nonce, b"whsec_x", b"sub_a")
    stored = "v1.k1." + base64.urlsafe_b64encode(nonce + sealed).decode()
    box = SecretBox(Keyring("w2", {"w2": NEW, "k1": OLD}))
    assert box.decrypt("sub_a", stored) == "whsec_x" and not box.is_current(stored)
    again = box.reseal("sub_a", stored)
    assert again.startswith("v2.") and box.is_current(again)
    assert SecretBox(Keyring("w2", {"w2": NEW})).decrypt("sub_a", again) == "whsec_x"
