"""Webhook subscription secrets as a sealed column (``kinwell keys rewrap`` of every sending service)."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.crypto import Keyring
from shared.keyrotation import SealedColumn
from shared.webhooks.models import WebhookSubscription
from shared.webhooks.secrets import SecretBox

_box = cache(SecretBox)


def _secret(keyring: Keyring, row: Any) -> str | None:
    box = _box(keyring)
    return None if box.is_current(row.secret_ciphertext) else box.reseal(row.id, row.secret_ciphertext)


WEBHOOK_SECRETS = SealedColumn(
    "webhook_subscription.secret_ciphertext", "webhook_key", WebhookSubscription, "secret_ciphertext", ("id",), _secret
)
