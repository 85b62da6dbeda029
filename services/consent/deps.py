"""What every consent request needs besides its session: keys, signer, settings, the bus."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from services.consent.config import ConsentSettings
from services.consent.models import PolicyVersion
from shared.auth import ReceiptSigner
from shared.bus.connection import Bus
from shared.crypto import pseudonym

NONCE_BYTES = 12
_LOCK_HELD = "consent_write_lock_held"
# Set on a session whose transaction holds the write lock from its first read (the writer's).
SERIALISED = "consent_serialised"


class DirectoryCipher:
    """AES-GCM for directory fields; the key is HKDF(master key, info="consent-directory").

    The associated data binds a ciphertext to its subject and field, so a sealed phone number
    copied onto another subject's row, or into the email field, fails to open.
    """

    INFO = b"consent-directory"

    def __init__(self, master_key: bytes, key_id: str) -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=self.INFO).derive(master_key)
        self._aead = AESGCM(key)
        self.key_id = key_id

    @staticmethod
    def _aad(subject: str, field: str) -> bytes:
        return f"{subject}|{field}".encode()

    def seal(self, subject: str, field: str, value: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value.encode(), self._aad(subject, field))

    def open(self, subject: str, field: str, sealed: bytes) -> str:
        """Raises ``cryptography.exceptions.InvalidTag`` for a wrong key, subject or field."""
        plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._aad(subject, field))
        return plain.decode()


@dataclass(frozen=True)
class ConsentContext:
    """Built once per app from settings (keys are derived once, not per request)."""

    settings: ConsentSettings
    signer: ReceiptSigner
    cipher: DirectoryCipher
    _pseudonym_key: bytes
    # SQLite has one writer at a time, and a waiting writer sleeps in SQLite's busy handler
    # (1, 2, 5 ... 100 ms): under load, subject changes queue here instead, woken at once.
    write_lock: threading.Lock = field(default_factory=threading.Lock, compare=False)
    # Policy versions are never edited once published, so each is read from the database once.
    policies: dict[tuple[str, int], PolicyVersion] = field(default_factory=dict, compare=False)

    @classmethod
    def from_settings(cls, settings: ConsentSettings) -> ConsentContext:
        platform = settings.platform
        return cls(
            settings=settings,
            signer=ReceiptSigner(platform),
            cipher=DirectoryCipher(platform.secret("master_key"), platform.master_key_id),
            _pseudonym_key=platform.secret("pseudonym_key"),
        )

    @property
    def tenant(self) -> str:
        return self.settings.platform.tenant

    @property
    def k(self) -> int:
        return self.settings.platform.k_anonymity

    def pseudonym(self, employee_id: str) -> str:
        return pseudonym(self._pseudonym_key, self.tenant, employee_id)

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
