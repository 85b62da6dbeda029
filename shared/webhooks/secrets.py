"""Signing secrets: generated per subscription, shown once, stored encrypted.

A secret is a Standard Webhooks ``whsec_<base64>`` string (32 random bytes). At rest it is
AES-256-GCM ciphertext under a key derived (HKDF-SHA256) from the platform master key, with the
subscription id as associated data, so a ciphertext copied onto another subscription row does not
decrypt. The master key id is part of the stored value, ready for key rotation.
"""

from __future__ import annotations

import base64
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import PlatformSettings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_FORMAT = "v1"
_INFO = b"kinwell webhook signing secret v1"


def generate_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


class SecretUnreadable(ValueError):
    """A stored secret does not decrypt (wrong key, another row's ciphertext, or damage)."""


class SecretBox:
    """Encrypts and decrypts subscription secrets with a key derived from the master key."""

    def __init__(self, master_key: bytes, key_id: str = "k1") -> None:
        if len(master_key) < 32:
            raise ValueError("the master key must be at least 32 bytes")
        if "." in key_id:
            raise ValueError("key_id must not contain '.'")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)
        self._aead = AESGCM(key)
        self.key_id = key_id

    @classmethod
    def from_platform(cls, platform: PlatformSettings) -> SecretBox:
        return cls(platform.secret("master_key"), platform.master_key_id)

    def encrypt(self, subscription_id: str, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), subscription_id.encode())
        return f"{_FORMAT}.{self.key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, subscription_id: str, stored: str) -> str:
        try:
            fmt, key_id, blob = stored.split(".", 2)
            if fmt != _FORMAT or key_id != self.key_id:
                raise SecretUnreadable("unknown secret format or key id")
            raw = base64.urlsafe_b64decode(blob)
            return self._aead.decrypt(raw[:12], raw[12:], subscription_id.encode()).decode()
        except (ValueError, InvalidTag) as exc:
            raise SecretUnreadable("the secret does not decrypt") from exc
