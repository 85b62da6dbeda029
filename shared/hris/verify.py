"""Inbound HRIS webhooks: Standard Webhooks signature check, then the body as Kinwell HRIS events.

The sender signs ``<webhook-id>.<webhook-timestamp>.<body>`` with HMAC-SHA256 under a shared
``whsec_`` secret. Several secrets may be configured at once so that a secret can be rotated
without downtime: a message verifies if any of them signed it. The timestamp must be within five
minutes of now (replay window); within it, the ``webhook-id`` is the idempotency key the consent
service records, so a replayed or retried message is processed once.
"""

from __future__ import annotations

import binascii
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.db import SessionDep
from shared.errors import PayloadTooLarge, Unauthorized
from shared.hris.adapters import BambooHrOptions, MergeOptions, adapt

log = logging.getLogger("kinwell.hris")

TOLERANCE_SECONDS = 5 * 60  # the standardwebhooks package's own window, checked first for a clear error
DEFAULT_MAX_BYTES = 256 * 1024
_WEBHOOK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_CHALLENGE = {"WWW-Authenticate": 'Signature realm="kinwell-hris"'}


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, code="invalid-webhook-signature", headers=dict(_CHALLENGE))


def verify_hris_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> str:
    """The webhook id of a correctly signed, fresh message; Unauthorized (401) otherwise.

    PayloadTooLarge (413) above ``max_bytes``, before any cryptography.
    """
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signature = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signature) or not _WEBHOOK_ID.fullmatch(msg_id) or len(signature) > 4096:
        raise _unauthorized("The webhook-id, webhook-timestamp and webhook-signature headers are required.")
    try:
        age = time.time() - int(stamp)
    except ValueError:
        raise _unauthorized("The webhook timestamp is invalid.") from None
    if abs(age) > TOLERANCE_SECONDS:
        raise _unauthorized("The webhook timestamp is outside the five-minute tolerance.")
    if not secrets:
        log.warning("hris webhook refused: no secret configured", extra={"outcome": "no-secret"})
        raise _unauthorized("The webhook signature is invalid.")
    checked = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
    for secret in secrets:
        try:
            Webhook(secret).verify(body, checked, json_parse=False)
            return msg_id
        # Malformed signatures make the package raise ValueError/binascii.Error, not its own error.
        except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError):
            continue
        except Exception as exc:  # noqa: BLE001 - a broken secret in config must not open the door
            log.warning("hris secret unusable", extra={"error_type": type(exc).__name__})
    raise _unauthorized("The webhook signature is invalid.")


@dataclass(frozen=True)
class HrisWebhook:
    """A verified inbound message: its id (the idempotency key), the vendor, and its events."""

    webhook_id: str
    vendor: str
    events: list[Any]


def read_hris_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    vendor: str = "kinwell",
    *,
    options: BambooHrOptions | MergeOptions | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> HrisWebhook:
    """Verify, parse and adapt one inbound webhook (401, 413, 400, 404 or 422 problem errors)."""
    webhook_id = verify_hris_webhook(headers, body, secrets, max_bytes=max_bytes)
    return HrisWebhook(webhook_id, vendor, adapt(vendor, body, options=options))


SecretsFn = Callable[[Request], Sequence[str]]


async def _raw_body(request: Request) -> bytes:
    """The exact bytes that were signed (FastAPI would parse a JSON body otherwise)."""
    return await request.body()


HandleFn = Callable[[Session, HrisWebhook], None]


def hris_webhook_router(
    secrets: SecretsFn,
    handle: HandleFn,
    *,
    path: str = "/v1/hris/webhooks/{vendor}",
    options: Mapping[str, BambooHrOptions | MergeOptions] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> APIRouter:
    """A ready endpoint: verify, adapt, then ``handle(session, webhook)`` in the request's transaction.

    ``handle`` records ``webhook.webhook_id`` (skipping ids already processed) and stages the
    platform events (:func:`shared.hris.to_platform_events`) in the outbox; the transaction
    commits before the 200, so a failure makes the HRIS retry.
    """
    router = APIRouter(tags=["hris"])
    per_vendor = dict(options or {})

    @router.post(path, summary="Receive an HRIS webhook (Standard Webhooks signature)")
    def receive_hris_webhook(
        vendor: str, request: Request, body: Annotated[bytes, Depends(_raw_body)], session: SessionDep
    ) -> dict[str, Any]:
        """Signed HRIS events in the Kinwell format (``kinwell``) or a vendor's (``bamboohr``, ``merge``)."""
        # Synchronous on purpose: verification and the handler's database work run in the thread pool.
        webhook = read_hris_webhook(
            request.headers, body, secrets(request), vendor, options=per_vendor.get(vendor), max_bytes=max_bytes
        )
        handle(session, webhook)
        return {"webhook_id": webhook.webhook_id, "events": len(webhook.events)}

    return router
