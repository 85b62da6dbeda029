"""What every consent request needs besides its session: keys, signer, settings, the bus."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from services.consent.config import ConsentSettings
from services.consent.policy.models import PolicyVersion
from shared.auth import ReceiptSigner
from shared.bus.connection import Bus
from shared.crypto import CiphertextInvalid, Keyring, aad, key_id_of, pseudonym
from shared.eventkeys import EventKeyring
from shared.release.rules import ReleaseRules

if TYPE_CHECKING:
    from services.consent.writer import ConsentWriter

NONCE_BYTES = 12
_LOCK_HELD = "consent_write_lock_held"
# Set on a session whose transaction holds the write lock from its first read (the writer's).
SERIALISED = "consent_serialised"


class DirectoryCipher:
    """The directory's envelope (``shared.crypto``): purpose ``consent-directory`` of the master keyring.

    The associated data binds a ciphertext to its subject and field, so a sealed phone number
    copied onto another subject's row, or into the email field, fails to open. Values sealed
    before the envelope (``nonce | ciphertext`` under HKDF(master key, "consent-directory"), no
    version byte) still open, under any configured master key, until ``kinwell keys rewrap``.
    """

    PURPOSE = "consent-directory"

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.envelope = keyring.envelope(self.PURPOSE)
        self.key_id = keyring.current_id
        self._legacy = [
            AESGCM(HKDF(algorithm=SHA256(), length=32, salt=None, info=b"consent-directory").derive(keyring.root(kid)))
            for kid in sorted(keyring.key_ids, key=lambda kid: kid != keyring.current_id)
        ]

    def _aad(self, subject: str, field: str) -> bytes:
        return aad(self.PURPOSE, subject, field)

    def seal(self, subject: str, field: str, value: str) -> bytes:
        return self.envelope.seal(value.encode(), self._aad(subject, field))

    def open(self, subject: str, field: str, sealed: bytes) -> str:
        """:class:`~shared.crypto.CiphertextInvalid` for a wrong key, subject or field."""
        return self.open_bytes(subject, field, sealed).decode()

    def open_bytes(self, subject: str, field: str, sealed: bytes) -> bytes:
        sealed = bytes(sealed)
        if key_id_of(sealed) is not None:
            try:
                return self.envelope.open(sealed, self._aad(subject, field))
            except CiphertextInvalid:
                pass  # a legacy blob whose random nonce happens to look like a v2 header
        for legacy in self._legacy:
            try:
                return legacy.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], f"{subject}|{field}".encode())
            except InvalidTag:
                continue
        raise CiphertextInvalid("directory value does not open")

    def reseal(self, subject: str, field: str, sealed: bytes) -> bytes | None:
        """``sealed`` re-sealed under the current key, or None if it already is (``kinwell keys rewrap``)."""
        if self.envelope.is_current(sealed):
            try:
                self.envelope.open(sealed, self._aad(subject, field))
                return None
            except CiphertextInvalid:
                pass
        return self.envelope.seal(self.open_bytes(subject, field, sealed), self._aad(subject, field))


@dataclass
class WriterSlot:
    """The service's one writer: made on first use while it runs (it writes through that run's
    engine and relay), dropped when it stops."""

    writer: ConsentWriter | None = None


@dataclass(frozen=True)
class ConsentContext:
    """Built once per app from settings (keys are derived once, not per request)."""

    settings: ConsentSettings
    signer: ReceiptSigner
    cipher: DirectoryCipher
    _pseudonym_key: bytes
    _manager_scope_key: bytes
    event_keys: EventKeyring = field(compare=False)
    # SQLite has one writer at a time, and a waiting writer sleeps in SQLite's busy handler
    # (1, 2, 5 ... 100 ms): under load, subject changes queue here instead, woken at once.
    write_lock: threading.Lock = field(default_factory=threading.Lock, compare=False)
    # Policy versions are never edited once published, so each is read from the database once.
    policies: dict[tuple[str, int], PolicyVersion] = field(default_factory=dict, compare=False)
    writer_slot: WriterSlot = field(default_factory=WriterSlot, compare=False)

    @classmethod
    def from_settings(cls, settings: ConsentSettings) -> ConsentContext:
        platform = settings.platform
        return cls(
            settings=settings,
            signer=ReceiptSigner(platform),
            cipher=DirectoryCipher(platform.keyring("master_key")),
            _pseudonym_key=platform.secret("pseudonym_key"),
            _manager_scope_key=platform.secret("manager_scope_key"),
            event_keys=EventKeyring(platform.secret("event_key_kek")),
        )

    @property
    def tenant(self) -> str:
        return self.settings.platform.tenant

    @property
    def k(self) -> int:
        return self.settings.platform.k_anonymity

    def pseudonym(self, employee_id: str) -> str:
        return pseudonym(self._pseudonym_key, self.tenant, employee_id)

    @property
    def release_rules(self) -> ReleaseRules:
        """The shared release rules at this tenant's k (docs/aggregator.md)."""
        rules = self.settings.stats_release
        return rules.model_copy(update={"k": self.k, "manager_k": max(self.k, rules.manager_k)})

    def manager_ref(self, employee_id: str) -> str:
        """How the aggregator knows a manager (``hris.org.manager_scope.v1``): not the pseudonym."""
        return pseudonym(self._manager_scope_key, self.tenant, employee_id)

    def owner_hash(self, subject: str) -> str:
        """Keyed hash naming the owner of an erasure request once the pseudonym is gone."""
        return hmac.new(self._pseudonym_key, f"erasure-owner|{subject}".encode(), hashlib.sha256).hexdigest()

    def hold_write_lock(self, session: Session) -> None:
        """On SQLite, hold :attr:`write_lock` until ``session``'s transaction ends."""
        if session.get_bind().dialect.name != "sqlite" or session.info.get(_LOCK_HELD):
            return
        self.write_lock.acquire()
        session.info[_LOCK_HELD] = True

        def release(_: Session, transaction: SessionTransaction) -> None:
            if transaction.parent is None and session.info.pop(_LOCK_HELD, False):
                self.write_lock.release()

        event.listen(session, "after_transaction_end", release)

    @contextmanager
    def write_locked(self, engine: Engine) -> Iterator[None]:
        """Hold :attr:`write_lock` (on SQLite) for the block: the consent writer's batches."""
        if engine.dialect.name != "sqlite":
            yield
            return
        with self.write_lock:
            yield

    @staticmethod
    def mark_write_lock_held(session: Session) -> None:
        """``session`` runs under :meth:`write_locked`: :meth:`hold_write_lock` must not take it again."""
        session.info[_LOCK_HELD] = True

    def url(self, path: str) -> str:
        return self.settings.base_url.rstrip("/") + path


# async: a plain ``def`` dependency would cost a threadpool round trip per request.
async def get_context(request: Request) -> ConsentContext:
    context: ConsentContext = request.app.state.consent
    return context


async def get_bus(request: Request) -> Bus:
    bus: Bus = request.app.state.runtime.bus
    return bus


ContextDep = Annotated[ConsentContext, Depends(get_context)]
BusDep = Annotated[Bus, Depends(get_bus)]
