"""Kinwell's cryptography: keyed hashing and the ONE envelope every encrypted column uses.

Keyed hashing

* A subject inside the platform is ``HMAC-SHA256(pseudonym key, tenant|employee id)``: stable, so
  services agree on it without asking anyone, and irreversible without the key. Only the consent
  service keeps the directory that maps a pseudonym back to an employee.
* A contribution to the aggregator carries ``HMAC-SHA256(period key, pseudonym|period)``: one
  person counts once per period, and tokens of two periods cannot be linked to each other.

The envelope (:class:`Envelope`)

AES-256-GCM with associated data, under one of several keys named by a *key id*. Blob format v2::

    0x02 | len(key id) (1 byte) | key id (ASCII) | nonce (12) | ciphertext + tag (16)

The header (version, key id) is authenticated together with the caller's associated data, so a
blob whose key id was edited does not open. The key id says which key opens the blob, so keys
rotate: a new key seals, older ones still open (until ``kinwell keys rewrap`` has re-sealed every
blob under the new key and the old key is dropped).

* A :class:`Keyring` holds a service's long-lived secret under rotation (the current key and the
  retired ones, ``KINWELL_MASTER_KEY`` / ``KINWELL_OLD_MASTER_KEYS``). ``keyring.envelope(purpose)``
  derives (HKDF-SHA256) one independent AES key per purpose and key id, so the directory, the
  wrapped data keys and the webhook secrets never share an AES key.
* A subject's data key is an envelope with exactly one key (``Envelope.single``), whose id is the
  data key's id: a field sealed under it names the key that opens it.

Associated data binds a blob to where it belongs (table, row, field, subject); build it with
:func:`aad`, which length-prefixes every part so two different contexts never encode alike.
Format v1 blobs (before the envelope) are still read by the callers that wrote them; see
``shared.datakeys``, ``services.consent.deps`` and ``shared.webhooks.secrets``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT_V2 = 0x02
NONCE_BYTES = 12
TAG_BYTES = 16
MIN_ROOT_KEY_BYTES = 32
_DERIVE_INFO = b"kinwell envelope v2|"


def pseudonym(key: bytes, tenant: str, employee_id: str) -> str:
    """The subject's pseudonym (64 hex characters)."""
    return hmac.new(key, f"{tenant}|{employee_id}".encode(), hashlib.sha256).hexdigest()


def period_token(key: bytes, subject: str, period: str) -> str:
    """One token per subject and period (e.g. ISO week ``2026-W48``)."""
    return hmac.new(key, f"{subject}|{period}".encode(), hashlib.sha256).hexdigest()


class CiphertextInvalid(Exception):
    """A blob is malformed, altered, or belongs to another row, field, subject or key."""


class UnknownKeyId(CiphertextInvalid):
    """A blob names a key id this process does not hold (a retired key dropped too early?)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"ciphertext does not open: no key with id {key_id!r} is held")
        self.key_id = key_id


def aad(*parts: str | bytes) -> bytes:
    """Associated data from context parts (e.g. table, row id, field, subject), unambiguously."""
    out = bytearray()
    for part in parts:
        raw = part.encode() if isinstance(part, str) else bytes(part)
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def _check_key_id(key_id: str) -> bytes:
    raw = key_id.encode("ascii")  # UnicodeEncodeError is a ValueError
    if not 0 < len(raw) < 256:
        raise ValueError("a key id is 1-255 ASCII characters")
    return raw


def _header(key_id: str) -> bytes:
    raw = _check_key_id(key_id)
    return bytes((FORMAT_V2, len(raw))) + raw


def key_id_of(blob: bytes) -> str | None:
    """The key id a v2 blob names, or None if ``blob`` is not a well-formed v2 blob."""
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != FORMAT_V2:
        return None
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        return None


class Envelope:
    """Seals with the current key, opens with any key it holds. Thread-safe, immutable."""

    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        if current_id not in keys:
            raise ValueError("the current key id has no key")
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if len(key) != 32:
                raise ValueError("envelope keys are 32 bytes (AES-256)")
        self.current_id = current_id
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @classmethod
    def single(cls, key_id: str, key: bytes) -> Envelope:
        """An envelope of one key (a subject's data key)."""
        return cls(key_id, {key_id: key})

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._aeads)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt under the current key, bound to ``aad`` (see :func:`aad`)."""
        header = _header(self.current_id)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._aeads[self.current_id].encrypt(nonce, plaintext, header + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a v2 blob sealed with the same ``aad`` by any key held.

        :class:`UnknownKeyId` if the blob names a key not held, :class:`CiphertextInvalid` if it
        is malformed, altered or sealed for another context.
        """
        blob = bytes(blob)
        key_id = key_id_of(blob)
        if key_id is None:
            raise CiphertextInvalid("not a v2 envelope")
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnknownKeyId(key_id)
        start = 2 + blob[1]
        nonce = blob[start : start + NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[start + NONCE_BYTES :], blob[:start] + aad)
        except InvalidTag as exc:
            raise CiphertextInvalid("ciphertext does not open") from exc

    def is_current(self, blob: bytes) -> bool:
        """True if ``blob`` is a v2 blob under the current key (nothing to re-seal)."""
        return key_id_of(blob) == self.current_id

    def reseal(self, blob: bytes, aad: bytes) -> bytes:
        """The same plaintext sealed under the current key (used by ``kinwell keys rewrap``)."""
        return self.seal(self.open(blob, aad), aad)


class Keyring:
    """A root secret under rotation: the current key (seals) and retired keys (open only).

    ``keys`` maps key id -> root key bytes (at least 32). Envelopes are derived per purpose, so
    one root key serves several columns without two of them ever sharing an AES key.
    """

    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        if current_id not in keys:
            raise ValueError("the current key id has no key")
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if len(key) < MIN_ROOT_KEY_BYTES:
                raise ValueError(f"root keys must be at least {MIN_ROOT_KEY_BYTES} bytes")
        self.current_id = current_id
        self._roots = dict(keys)
        self._envelopes: dict[str, Envelope] = {}

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._roots)

    def root(self, key_id: str) -> bytes:
        """A root key by id, for readers of pre-envelope (v1) blobs only."""
        try:
            return self._roots[key_id]
        except KeyError:
            raise UnknownKeyId(key_id) from None

    def envelope(self, purpose: str) -> Envelope:
        """The envelope of ``purpose`` (e.g. ``"consent-directory"``), derived once and cached."""
        envelope = self._envelopes.get(purpose)
        if envelope is None:
            derived = {kid: derive_key(root, purpose, kid) for kid, root in self._roots.items()}
            envelope = self._envelopes[purpose] = Envelope(self.current_id, derived)
        return envelope


def derive_key(root: bytes, purpose: str, key_id: str) -> bytes:
    """HKDF-SHA256(root, info = version | purpose | key id): 32 bytes for one purpose and key id."""
    info = _DERIVE_INFO + aad(purpose, key_id)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)
