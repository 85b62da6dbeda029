"""Per-subject data keys: envelope encryption with crypto-shredding.

Every field tied to a subject is sealed with AES-256-GCM under that subject's own *data key*
(DEK). The DEK is stored only *wrapped*: AES-256-GCM under a key-encryption key (KEK) derived
(HKDF-SHA256) from a platform master key, whose id is stored beside the wrapped key. So:

* destroying one row (``data_key``) makes every ciphertext of that subject unreadable, wherever a
  copy lives: in the database, in a stream payload, in a log export (crypto-shredding);
* rotating the master key means re-wrapping the small DEKs (:meth:`DataKeyStore.rewrap_all`),
  never re-encrypting the data; old master keys stay configured (``KINWELL_OLD_MASTER_KEYS``)
  until the re-wrap has run.

Associated data binds every ciphertext to its context (table, row, field, subject), so a
ciphertext copied onto another row, field or subject fails to open, and binds each wrapped DEK to
its subject, key id and KEK id. Blob format: ``0x01 | nonce (12) | ciphertext+tag``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Column, LargeBinary, delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from shared.db import after_commit
from shared.settings import PlatformSettings

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12
_KEK_INFO = b"kinwell data-key KEK v1|"


class DataKey(SQLModel, table=True):
    """A subject's data key, wrapped under the master key ``kek_id``. Deleting it shreds the data."""

    __tablename__ = "data_key"

    key_id: str = Field(primary_key=True, max_length=32)
    pseudonym: str = Field(max_length=64, unique=True)
    kek_id: str = Field(max_length=64)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    rewrapped_at: datetime | None = None


class KeyDestroyed(Exception):
    """The subject's data key no longer exists: their ciphertext can never be read again."""


class CiphertextInvalid(Exception):
    """A blob is malformed, altered, or belongs to another row, field or subject."""


class MasterKeyUnavailable(Exception):
    """A data key is wrapped under a master key id that is not configured."""


class MasterKeys:
    """The current master key (wraps new and re-wrapped keys) and older ones (unwrap only)."""

    def __init__(self, current_id: str, keys: dict[str, bytes]) -> None:
        if current_id not in keys:
            raise ValueError("the current master key id has no key")
        if any(len(k) < 32 for k in keys.values()):
            raise ValueError("master keys must be at least 32 bytes")
        self.current_id = current_id
        self._keks = {kid: AESGCM(self._derive(kid, key)) for kid, key in keys.items()}

    @staticmethod
    def _derive(kek_id: str, master: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEK_INFO + kek_id.encode()).derive(master)

    @classmethod
    def from_settings(cls, platform: PlatformSettings) -> MasterKeys:
        keys = {kid: secret.get_secret_value().encode() for kid, secret in platform.old_master_keys.items()}
        keys[platform.master_key_id] = platform.secret("master_key")
        return cls(platform.master_key_id, keys)

    @staticmethod
    def _aad(pseudonym: str, key_id: str, kek_id: str) -> bytes:
        return f"kinwell-dek|{pseudonym}|{key_id}|{kek_id}".encode()

    def wrap(self, dek: bytes, pseudonym: str, key_id: str) -> tuple[str, bytes]:
        kek_id = self.current_id
        nonce = os.urandom(NONCE_BYTES)
        return kek_id, FORMAT_V1 + nonce + self._keks[kek_id].encrypt(nonce, dek, self._aad(pseudonym, key_id, kek_id))

    def unwrap(self, row: DataKey) -> bytes:
        kek = self._keks.get(row.kek_id)
        if kek is None:
            raise MasterKeyUnavailable(row.kek_id)
        blob = bytes(row.wrapped)
        if blob[:1] != FORMAT_V1:
            raise CiphertextInvalid("unknown wrapped-key format")
        try:
            return kek.decrypt(blob[1:13], blob[13:], self._aad(row.pseudonym, row.key_id, row.kek_id))
        except InvalidTag as exc:
            raise CiphertextInvalid("wrapped key does not open") from exc


def _aad(context: tuple[str, ...]) -> bytes:
    joined = "|".join(context)
    if joined.count("|") != len(context) - 1:  # a part with "|" could alias another context
        raise ValueError("context parts must not contain '|'")
    return ("kinwell|" + joined).encode()


@dataclass(frozen=True)
class SubjectKey:
    """An unwrapped data key, usable for one subject only."""

    key_id: str
    pseudonym: str
    aead: AESGCM

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``context`` (e.g. table, row id, field) and the subject."""
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self.aead.encrypt(nonce, plaintext, _aad((*context, self.pseudonym)))

    def open(self, blob: bytes, *context: str) -> bytes:
        """Decrypt a blob sealed with the same context; :class:`CiphertextInvalid` otherwise."""
        blob = bytes(blob)
        if blob[:1] != FORMAT_V1 or len(blob) < 1 + NONCE_BYTES + 16:
            raise CiphertextInvalid("unknown ciphertext format")
        try:
            return self.aead.decrypt(blob[1:13], blob[13:], _aad((*context, self.pseudonym)))
        except InvalidTag as exc:
            raise CiphertextInvalid("ciphertext does not open") from exc


class DataKeyStore:
    """Creates, caches, destroys and re-wraps subjects' data keys.

    Unwrapped keys are cached in memory (bounded LRU) because unwrapping on every request would
    put a query on the hot path. A cached key can outlive its row in another replica, so tables
    that hold ciphertext reference ``data_key.key_id`` with ``ON DELETE CASCADE``: a write under a
    destroyed key fails its foreign key instead of storing data nobody can erase.
    """

    def __init__(self, master: MasterKeys, *, cache_size: int = 10_000) -> None:
        self.master = master
        self.cache_size = cache_size
        self._cache: OrderedDict[str, SubjectKey] = OrderedDict()
        self._lock = threading.Lock()

    # --- cache ---------------------------------------------------------------------------------

    def cached(self, pseudonym: str) -> SubjectKey | None:
        with self._lock:
            key = self._cache.get(pseudonym)
            if key is not None:
                self._cache.move_to_end(pseudonym)
            return key

    def _remember(self, key: SubjectKey) -> SubjectKey:
        with self._lock:
            self._cache[key.pseudonym] = key
            self._cache.move_to_end(key.pseudonym)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return key

    def evict(self, pseudonym: str) -> None:
        with self._lock:
            self._cache.pop(pseudonym, None)

    # --- lifecycle -----------------------------------------------------------------------------

    def _unwrap(self, row: DataKey) -> SubjectKey:
        return SubjectKey(row.key_id, row.pseudonym, AESGCM(self.master.unwrap(row)))

    def get(self, session: Session, pseudonym: str) -> SubjectKey | None:
        """The subject's key, or None if they have none (never had one, or it was destroyed)."""
        key = self.cached(pseudonym)
        if key is not None:
            return key
        row = session.exec(select(DataKey).where(DataKey.pseudonym == pseudonym)).first()
        return self._remember(self._unwrap(row)) if row is not None else None

    def require(self, session: Session, pseudonym: str) -> SubjectKey:
        key = self.get(session, pseudonym)
        if key is None:
            raise KeyDestroyed(pseudonym[:8])
        return key

    def get_or_create(self, engine: Engine, pseudonym: str) -> SubjectKey:
        """The subject's key, created and committed in a transaction of its own if missing.

        Committed on its own so that the (rare) first write of a subject does not hold the data
        transaction open; two replicas racing both succeed, the unique constraint picks one key.
        """
        with Session(engine) as session:
            key = self.get(session, pseudonym)
            if key is not None:
                return key
            dek = AESGCM.generate_key(bit_length=256)
            key_id = uuid.uuid4().hex
            kek_id, wrapped = self.master.wrap(dek, pseudonym, key_id)
            session.add(DataKey(key_id=key_id, pseudonym=pseudonym, kek_id=kek_id, wrapped=wrapped))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return self.require(session, pseudonym)
            return self._remember(SubjectKey(key_id, pseudonym, AESGCM(dek)))

    def destroy(self, session: Session, pseudonym: str) -> int:
        """Delete the subject's key in the caller's transaction (cascading to rows that use it)."""
        self.evict(pseudonym)
        # Evict again once committed: a concurrent reader may have re-cached it meanwhile.
        after_commit(session, lambda: self.evict(pseudonym))
        result: Any = session.exec(delete(DataKey).where(col(DataKey.pseudonym) == pseudonym))
        return int(result.rowcount or 0)

    def rewrap_all(self, session: Session, *, batch: int = 500) -> int:
        """Re-wrap every key not under the current master key; returns how many were re-wrapped."""
        done = 0
        current = self.master.current_id
        while True:
            rows = list(session.exec(select(DataKey).where(DataKey.kek_id != current).limit(batch)))
            if not rows:
                return done
            for row in rows:
                kek_id, wrapped = self.master.wrap(self.master.unwrap(row), row.pseudonym, row.key_id)
                session.exec(
                    update(DataKey)
                    .where(col(DataKey.key_id) == row.key_id)
                    .values(kek_id=kek_id, wrapped=wrapped, rewrapped_at=datetime.now(UTC))
                )
            session.commit()
            done += len(rows)
