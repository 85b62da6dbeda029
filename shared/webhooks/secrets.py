"""Signing secrets: generated per subscription, shown once, stored encrypted.

A secret is a Standard Webhooks ``whsec_<base64>`` string (32 random bytes). At rest it is sealed
by the envelope (``shared.crypto``, purpose ``webhook-secret``) of the service's *webhook*
keyring (``KINWELL_WEBHOOK_KEY``, its own key so that a service sending webhooks, such as the
aggregator, need not hold the master key), with the subscription id as associated data, so a
ciphertext copied onto another subscription row does not open. Stored as ``v2.<base64 blob>``.

Secrets stored before the envelope (``v1.<key id>.<base64>``) still open when the webhook keyring
holds a key of that id (during the migration, the old master key as
``KINWELL_OLD_WEBHOOK_KEYS='{"k1": "<old master key>"}'``), until ``kinwell keys rewrap``.
"""

from __future__ import annotations

import base64
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.crypto import CiphertextInvalid, Keyring, aad
from shared.settings import PlatformSettings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
PURPOSE = "webhook-secret"
_V2 = "v2"
_V1 = "v1"
_V1_INFO = b"kinwell webhook signing secret v1"


def generate_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode("ascii")


class SecretUnreadable(ValueError):
    """A stored secret does not decrypt (wrong key, another row's ciphertext, or damage)."""


class SecretBox:
    """Seals and opens subscription secrets with the webhook keyring."""

    def __init__(self, keyring: Keyring | bytes, key_id: str = "k1") -> None:
        if isinstance(keyring, bytes):  # one root key (tests, tools)
            keyring = Keyring(key_id, {key_id: keyring})
        self.keyring = keyring
        self.key_id = keyring.current_id
        self._envelope = keyring.envelope(PURPOSE)

    @classmethod
    def from_platform(cls, platform: PlatformSettings) -> SecretBox:
        return cls(platform.keyring("webhook_key"))

    def encrypt(self, subscription_id: str, secret: str) -> str:
        blob = self._envelope.seal(secret.encode(), aad(PURPOSE, subscription_id))
        return f"{_V2}.{base64.urlsafe_b64encode(blob).decode('ascii')}"

    def decrypt(self, subscription_id: str, stored: str) -> str:
        try:
            fmt, rest = stored.split(".", 1)
            if fmt == _V2:
                blob = base64.urlsafe_b64decode(rest)
                return self._envelope.open(blob, aad(PURPOSE, subscription_id)).decode()
            if fmt == _V1:
                return self._decrypt_v1(subscription_id, rest)
            raise SecretUnreadable("unknown secret format")
        except (ValueError, InvalidTag, CiphertextInvalid) as exc:
            raise SecretUnreadable("the secret does not decrypt") from exc

    def _decrypt_v1(self, subscription_id: str, rest: str) -> str:
        key_id, blob = rest.split(".", 1)
        root = self.keyring.root(key_id)
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_V1_INFO).derive(root)
        raw = base64.urlsafe_b64decode(blob)
        return AESGCM(key).decrypt(raw[:12], raw[12:], subscription_id.encode()).decode()

    def is_current(self, stored: str) -> bool:
        """True if ``stored`` is sealed by the current key in the current format."""
        fmt, _, rest = stored.partition(".")
        try:
            return fmt == _V2 and self._envelope.is_current(base64.urlsafe_b64decode(rest))
        except ValueError:
            return False

    def reseal(self, subscription_id: str, stored: str) -> str:
        """The same secret sealed under the current key (``kinwell keys rewrap``)."""
        return self.encrypt(subscription_id, self.decrypt(subscription_id, stored))
