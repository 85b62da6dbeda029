"""An HRIS sender (signs like a real one) and an ingress app hosting ``hris_webhook_router``."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from standardwebhooks import Webhook

from shared.crypto import pseudonym
from shared.errors import BodyLimitMiddleware, install_error_handlers
from shared.events.base import Event
from shared.hris import HrisWebhook, hris_webhook_router, to_platform_events

KEY = b"p" * 32
TENANT = "acme"


def pseudonym_of(employee_id: str) -> str:
    return pseudonym(KEY, TENANT, employee_id)


def signed_headers(secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None) -> dict:
    """The three Standard Webhooks headers an HRIS sends."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }


def post_signed(client: httpx.Client, path: str, payload: Any, secret: str, **kw: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(path, content=body, headers=signed_headers(secret, body, **kw))


@dataclass
class Ingress:
    """What the consent service will do with a verified webhook, minus the outbox."""

    secrets: list[str]
    consented: set[str] = field(default_factory=set)
    processed: set[str] = field(default_factory=set)
    published: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, session: Session, webhook: HrisWebhook) -> None:
        with self.lock:
            if webhook.webhook_id in self.processed:  # the idempotency key
                return
            self.processed.add(webhook.webhook_id)
            for event in webhook.events:
                self.published.extend(to_platform_events(event, pseudonym_of, self.consented.__contains__))

    def current_secrets(self, _request: Any) -> Sequence[str]:
        return list(self.secrets)


def ingress_app(engine: Engine, ingress: Ingress) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.engine = engine
    app.include_router(hris_webhook_router(ingress.current_secrets, ingress.handle))
    app.add_middleware(BodyLimitMiddleware, max_bytes=64 * 1024)
    return app
