"""Per-subject data keys: envelope encryption with crypto-shredding.

Every field tied to a subject is sealed (``shared.crypto.Envelope``, AES-256-GCM) under that
subject's own *data key* (DEK). The DEK is stored only *wrapped*: sealed by the ``data-key``
envelope of the service's master :class:`~shared.crypto.Keyring`, whose key id is stored beside
the wrapped key (``kek_id``). So:

* destroying one row (``data_key``) makes every ciphertext of that subject unreadable, wherever a
  copy lives: in the database, in a stream payload, in a log export (crypto-shredding);
* rotating the master key means re-wrapping the small DEKs (:meth:`DataKeyStore.rewrap_all`,
  ``kinwell keys rewrap``), never re-encrypting the data; old master keys stay configured
  (``KINWELL_OLD_MASTER_KEYS``) until the re-wrap has run.

Associated data binds every ciphertext to its context (table, row, field, subject), so a
ciphertext copied onto another row, field or subject fails to open, and binds each wrapped DEK to
its subject and key id. Blobs are envelope v2 (``shared.crypto``); v1 blobs written before the
envelope (``0x01 | nonce | ciphertext``) are still opened, never written.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
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

from shared.crypto import CiphertextInvalid, Envelope, Keyring, UnknownKeyId, aad
from shared.db import after_commit
from shared.settings import PlatformSettings
from shared.shredding import scrub_after_commit

__all__ = [
    "CiphertextInvalid",
    "DataKey",
    "DataKeyStore",
    "KeyDestroyed",
    "MasterKeyUnavailable",
    "MasterKeys",
    "SubjectKey",
]

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12
DATA_KEY_PURPOSE = "data-key"
_KEK_INFO_V1 = b"kinwell data-key KEK v1|"


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


class MasterKeyUnavailable(UnknownKeyId):
    """A data key is wrapped under a master key id that is not configured."""


def _open_v1(aead: AESGCM, blob: bytes, associated: bytes) -> bytes:
    if blob[:1] != FORMAT_V1 or len(blob) < 1 + NONCE_BYTES + 16:
        raise CiphertextInvalid("unknown ciphertext format")
    try:
        return aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], associated)
    except InvalidTag as exc:
        raise CiphertextInvalid("ciphertext does not open") from exc


class MasterKeys:
    """Wraps and unwraps data keys with the master keyring (current key wraps, all unwrap)."""

    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        self.keyring = Keyring(current_id, keys)
        self.current_id = current_id
        self._envelope = self.keyring.envelope(DATA_KEY_PURPOSE)

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> MasterKeys:
        return cls(keyring.current_id, {kid: keyring.root(kid) for kid in keyring.key_ids})

    @classmethod
    def from_settings(cls, platform: PlatformSettings) -> MasterKeys:
        return cls.from_keyring(platform.keyring("master_key"))

    @staticmethod
    def _aad(pseudonym: str, key_id: str) -> bytes:
        return aad("kinwell-dek", pseudonym, key_id)

    def wrap(self, dek: bytes, pseudonym: str, key_id: str) -> tuple[str, bytes]:
        return self.current_id, self._envelope.seal(dek, self._aad(pseudonym, key_id))

    def unwrap(self, row: DataKey) -> bytes:
        blob = bytes(row.wrapped)
        if row.kek_id not in self.keyring.key_ids:
            raise MasterKeyUnavailable(row.kek_id)
        if blob[:1] == FORMAT_V1:  # wrapped before the envelope: KEK = HKDF(master, v1 info | id)
            kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEK_INFO_V1 + row.kek_id.encode())
            v1_aad = f"kinwell-dek|{row.pseudonym}|{row.key_id}|{row.kek_id}".encode()
            return _open_v1(AESGCM(kek.derive(self.keyring.root(row.kek_id))), blob, v1_aad)
        try:
            return self._envelope.open(blob, self._aad(row.pseudonym, row.key_id))
        except UnknownKeyId as exc:
            raise MasterKeyUnavailable(exc.key_id) from None

    def is_current(self, row: DataKey) -> bool:
        return row.kek_id == self.current_id and self._envelope.is_current(bytes(row.wrapped))


def _v1_aad(context: tuple[str, ...]) -> bytes:
    joined = "|".join(context)
    if joined.count("|") != len(context) - 1:  # a part with "|" could alias another context
        raise ValueError("context parts must not contain '|'")
    return ("kinwell|" + joined).encode()


@dataclass(frozen=True)
class SubjectKey:
    """An unwrapped data key, usable for one subject only.

    ``envelope`` is the data key as a one-key :class:`~shared.crypto.Envelope` (key id = the
    data key's id), for callers that build their own associated data (e.g. event fields);
    :meth:`seal` / :meth:`open` add the subject to the context themselves.
    """

    key_id: str
    pseudonym: str
    envelope: Envelope
    _legacy: AESGCM

    @classmethod
    def of(cls, key_id: str, pseudonym: str, dek: bytes) -> SubjectKey:
        return cls(key_id, pseudonym, Envelope.single(key_id, dek), AESGCM(dek))

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``context`` (e.g. table, row id, field) and the subject."""
        return self.envelope.seal(plaintext, aad(*context, self.pseudonym))

    def open(self, blob: bytes, *context: str) -> bytes:
        """Decrypt a blob sealed with the same context; :class:`CiphertextInvalid` otherwise."""
        blob = bytes(blob)
        if blob[:1] == FORMAT_V1:
            return _open_v1(self._legacy, blob, _v1_aad((*context, self.pseudonym)))
        return self.envelope.open(blob, aad(*context, self.pseudonym))


class SubjectKeyCache:
    """Unwrapped subject keys held in memory, the least recently used dropped beyond ``cache_size``;
    thread-safe, since endpoints and handlers run in worker threads. A key store keeps one so that
    a request does not pay a query (or a bus round trip) and an unwrap for a key it used before."""

    def __init__(self, cache_size: int) -> None:
        self.cache_size = cache_size
        self._cache: OrderedDict[str, SubjectKey] = OrderedDict()
        self._lock = threading.Lock()

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


class DataKeyStore(SubjectKeyCache):
    """Creates, caches, destroys and re-wraps subjects' data keys.

    Unwrapped keys are cached in memory (bounded LRU) because unwrapping on every request would
    put a query on the hot path. A cached key can outlive its row in another replica, so tables
    that hold ciphertext reference ``data_key.key_id`` with ``ON DELETE CASCADE``: a write under a
    destroyed key fails its foreign key instead of storing data nobody can erase.
    """

    def __init__(self, master: MasterKeys, *, cache_size: int = 10_000) -> None:
        super().__init__(cache_size)
        self.master = master

    # --- lifecycle -----------------------------------------------------------------------------

    def _unwrap(self, row: DataKey) -> SubjectKey:
        return SubjectKey.of(row.key_id, row.pseudonym, self.master.unwrap(row))

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
            return self._remember(SubjectKey.of(key_id, pseudonym, dek))

    def destroy(self, session: Session, pseudonym: str) -> int:
        """Delete the subject's key in the caller's transaction (cascading to rows that use it)."""
        self.evict(pseudonym)
        # Evict again once committed: a concurrent reader may have re-cached it meanwhile.
        after_commit(session, lambda: self.evict(pseudonym))
        # Then leave no recoverable copy of the wrapped key in the database files.
        scrub_after_commit(session, ("data_key",))
        result: Any = session.exec(delete(DataKey).where(col(DataKey.pseudonym) == pseudonym))
        return int(result.rowcount or 0)

    def rewrap_all(self, session: Session, *, batch: int = 500) -> int:
        """Re-wrap every key not sealed by the current master key in the current format.

        Walks the table in key-id order, one committed batch at a time (safe to interrupt and run
        again); returns how many keys were re-wrapped.
        """
        done, after = 0, ""
        while True:
            query = select(DataKey).where(col(DataKey.key_id) > after).order_by(col(DataKey.key_id)).limit(batch)
            rows = list(session.exec(query))
            if not rows:
                return done
            for row in rows:
                if self.master.is_current(row):
                    continue
                kek_id, wrapped = self.master.wrap(self.master.unwrap(row), row.pseudonym, row.key_id)
                session.exec(
                    update(DataKey)
                    .where(col(DataKey.key_id) == row.key_id, col(DataKey.wrapped) == row.wrapped)  # CAS
                    .values(kek_id=kek_id, wrapped=wrapped, rewrapped_at=datetime.now(UTC))
                    .execution_options(synchronize_session=False)  # not evaluated against the batch
                )
                done += 1
            session.commit()
            after = rows[-1].key_id
