"""Fixtures for the escalation service: the real service on uvicorn, real NATS, a loopback pager.

Consent state and flags are written as their real producers write them: grants as the ``consent``
NATS user into the KV bucket, flags as the ``checkin`` user into the CHECKIN stream (the broker's
permissions apply). Pages are received by a loopback HTTP receiver and verified with the
``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from shared.bus import Bus
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.events.base import Event
from shared.events.checkin import EscalationFlagged
from shared.natsserver import NatsServer
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET
from tests.integrations.conftest import loopback_settings
from tests.integrations.loopback import Receiver, wait_until
from tests.servicefixtures import RunningService, bearer

FAST_POLICY = {
    "rules": [
        {"targets": [{"counsellor": "c-first"}], "ack_delay_seconds": {"imminent": 1.5, "high": 60, "moderate": 600}},
        {"targets": [{"counsellor": "c-second"}], "ack_delay_seconds": {"imminent": 1.5, "high": 60, "moderate": 600}},
    ],
    "loops": 1,
    "crisis_service": True,
    "contact_timeout_seconds": {"imminent": 600, "high": 600, "moderate": 600},
}


def new_sub() -> str:
    return f"E{uuid.uuid4().hex[:10]}"


async def _bus(server: NatsServer, user: str) -> Bus:
    kw = server.connect_kwargs(user)
    bus = Bus(user, kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    return bus


def publish_as(server: NatsServer, user: str, *events: Event) -> None:
    async def body() -> None:
        bus = await _bus(server, user)
        try:
            for event in events:
                await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
        finally:
            await bus.close()

    asyncio.run(body())


def put_consents(server: NatsServer, entries: dict[str, str], purpose: str = "escalation") -> None:
    """Write ``{pseudonym: state}`` into the consent bucket as the consent service does."""

    async def body() -> None:
        bus = await _bus(server, "consent")
        try:
            kv = await bus.js.key_value(KV_BUCKET)
            at = datetime.now(UTC).isoformat()
            for subject, state in entries.items():
                await kv.put(kv_key(subject, purpose), kv_value(state, 1, at))
        finally:
            await bus.close()

    asyncio.run(body())


def flag(subject: str, severity: str = "critical", *, contact: bool = False, **kw: Any) -> EscalationFlagged:
    return EscalationFlagged(
        pseudonym=subject,
        checkin_ref=kw.pop("checkin_ref", uuid.uuid4()),
        severity=severity,  # type: ignore[arg-type]
        reasons=kw.pop("reasons", ["contact_requested"] if contact else ["self_harm_item"]),
        contact_requested=contact,
        lang="en",
        flagged_at=datetime.now(UTC),
        **kw,
    )


@dataclass
class Escalation:
    nats: NatsServer
    platform: PlatformSettings
    svc: RunningService
    receiver: Receiver
    make_token: Callable[..., str]
    secret: str = ""

    def pseudonym(self, sub: str) -> str:
        return pseudonym(self.platform.secret("pseudonym_key"), self.platform.tenant, sub)

    def auth(self, sub: str, *roles: str) -> dict[str, str]:
        return bearer(self.make_token(sub, *(roles or ("employee",))))

    def admin(self) -> dict[str, str]:
        return self.auth("ops-1", "admin")

    def counsellor(self, sub: str = "c-1") -> dict[str, str]:
        return self.auth(sub, "counsellor")

    def grant(self, *subs: str, state: str = "granted") -> None:
        put_consents(self.nats, {self.pseudonym(s): state for s in subs})
        gate = self.svc.runtime.gate
        want = state == "granted"
        wait_until(lambda: all(gate.allowed(self.pseudonym(s), "escalation") == want for s in subs))

    def flag(self, sub: str, severity: str = "critical", **kw: Any) -> EscalationFlagged:
        event = flag(self.pseudonym(sub), severity, **kw)
        publish_as(self.nats, "checkin", event)
        return event

    def subscribe_pager(self, path: str = "/pager", types: tuple[str, ...] = ("escalation.page.triggered",)) -> str:
        url = self.receiver.url(path)
        r = self.svc.client.post(
            "/v1/subscriptions", json={"url": url, "event_types": list(types)}, headers=self.admin()
        )
        assert r.status_code == 201, r.text
        self.secret = r.json()["secret"]
        return str(r.json()["secret"])

    def pages(self, path: str = "/pager", secret: str | None = None) -> list[dict[str, Any]]:
        """Verified pages, one per webhook-id (what a careful receiver keeps), in arrival order."""
        kept: dict[str, Any] = {}
        for hit in self.receiver.hits_on(path):
            payload = Webhook(secret or self.secret).verify(hit.body, hit.headers)
            kept.setdefault(hit.headers["webhook-id"], payload)
        return list(kept.values())

    def cases(self, counsellor: str = "c-1", state: str = "open") -> list[dict[str, Any]]:
        r = self.svc.client.get(f"/v1/cases?state={state}", headers=self.counsellor(counsellor))
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def case_of(self, sub: str) -> dict[str, Any]:
        """The case opened about ``sub`` (waits for it)."""
        subject = self.pseudonym(sub)

        def find() -> Any:
            from sqlmodel import Session, select

            from services.escalation.cases.models import Case

            with Session(self.svc.runtime.engine) as session:
                return session.exec(select(Case.id).where(Case.pseudonym == subject)).first()

        case_id = wait_until(find, timeout=15)
        r = self.svc.client.get(f"/v1/cases/{case_id}", headers=self.counsellor())
        assert r.status_code == 200, r.text
        return dict(r.json())


def escalation_overrides(**extra: Any) -> dict[str, Any]:
    return {"webhooks": loopback_settings(), "timer_poll_seconds": 0.1, **extra}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def escalation(start_service, service_nats, platform_settings, token, receiver) -> Escalation:  # type: ignore[no-untyped-def]
    svc = start_service("escalation", **escalation_overrides())
    return Escalation(service_nats, platform_settings, svc, receiver, token)


def put_policy(h: Escalation, policy: dict[str, Any] | None = None) -> None:
    r = h.svc.client.put("/v1/policies", json=policy or FAST_POLICY, headers=h.admin())
    assert r.status_code == 200, r.text
