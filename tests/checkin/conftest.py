"""Fixtures for the check-in service: the real service on uvicorn, its own nats-server and DB.

The consent service is being built in parallel, so what checkin needs from it is written here
exactly as consent will, as the ``consent`` NATS user: grants and withdrawals in the KV bucket,
and events on its streams (``service_nats`` has provisioned every stream and the bucket).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlalchemy.engine import Engine

from services.checkin.config import CheckinSettings
from shared.bus import Bus
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.db import make_engine, run_migrations
from shared.eventkeys import EventKeyring
from shared.events import parse_event
from shared.events.base import Event
from shared.events.hris import SubjectAssigned
from shared.events.sealed import SealedEvent
from shared.events.subject import ErasureRequested
from shared.natsserver import NatsServer
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET
from tests.consentevents import consent_changed
from tests.servicefixtures import TEST_RATE_LIMITS, RunningService, bearer

CHECKIN_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"
FAST = {"nudge_interval_seconds": 0.2, "contribution_release_seconds": 0.2}
WEEKLY_OK = {"who5_1": 4, "who5_2": 4, "who5_3": 3, "who5_4": 4, "who5_5": 4, "mood": 4}
WEEKLY_LOW = {"who5_1": 2, "who5_2": 2, "who5_3": 2, "who5_4": 2, "who5_5": 2, "mood": 2}  # raw 10


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _bus(server: NatsServer, user: str) -> Bus:
    kw = server.connect_kwargs(user)
    bus = Bus(user, kw["servers"][0], kw["user"], kw["password"])
    await bus.connect()
    return bus


@dataclass
class Harness:
    nats: NatsServer
    platform: PlatformSettings
    svc: RunningService
    make_token: Callable[..., str]

    # --- identities ----------------------------------------------------------------------------

    def pseudonym(self, sub: str) -> str:
        return pseudonym(self.platform.secret("pseudonym_key"), self.platform.tenant, sub)

    def auth(self, sub: str, *roles: str) -> dict[str, str]:
        return bearer(self.make_token(sub, *(roles or ("employee",))))

    # --- consent, as the consent service writes it ---------------------------------------------

    def set_consent(self, sub: str, state: str, *purposes: str, event: bool = True, wait: bool = True) -> None:
        async def body() -> None:
            bus = await _bus(self.nats, "consent")
            try:
                kv = await bus.js.key_value(KV_BUCKET)
                now = datetime.now(UTC)
                for purpose in purposes:
                    await kv.put(kv_key(self.pseudonym(sub), purpose), kv_value(state, 1, now.isoformat()))
                    if event:
                        kek = self.platform.secret("event_key_kek")
                        p = self.pseudonym(sub)
                        changed = await consent_changed(bus, kek, p, purpose, state, now)  # type: ignore[arg-type]
                        await bus.publish(changed.subject, changed.model_dump_json().encode(), str(changed.event_id))
            finally:
                await bus.close()

        run(body())
        if not wait:
            return
        gate = self.svc.runtime.gate
        want = state == "granted"
        self.wait(lambda: all(gate.allowed(self.pseudonym(sub), p) == want for p in purposes), "gate update")

    def grant(self, sub: str, *purposes: str) -> None:
        self.set_consent(sub, "granted", *purposes)

    def withdraw(self, sub: str, *purposes: str, event: bool = True, wait: bool = True) -> None:
        self.set_consent(sub, "withdrawn", *purposes, event=event, wait=wait)

    def publish_as_consent(self, event: Event) -> None:
        async def body() -> None:
            bus = await _bus(self.nats, "consent")
            try:
                await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
            finally:
                await bus.close()

        run(body())

    def assign(self, sub: str, org_unit: str, effective_from: date) -> None:
        self.publish_as_consent(
            SubjectAssigned(pseudonym=self.pseudonym(sub), org_unit=org_unit, effective_from=effective_from)
        )

    def staff(self, *org_units: str, since: date = date(2020, 1, 1)) -> None:
        """Give each unit k members who never check in, so that its contributions name it (a unit
        with fewer is rolled up by ``shared.contributions``). Call before assigning the subjects:
        the HRIS consumer applies in order, so once they are placed the staff are counted too."""
        for unit in org_units:
            for _ in range(self.platform.k_anonymity):
                self.publish_as_consent(
                    SubjectAssigned(pseudonym=secrets.token_hex(32), org_unit=unit, effective_from=since)
                )

    def request_erasure(self, sub: str) -> uuid.UUID:
        request_id = uuid.uuid4()
        self.publish_as_consent(
            ErasureRequested(request_id=request_id, pseudonym=self.pseudonym(sub), requested_at=datetime.now(UTC))
        )
        return request_id

    # --- inspection ----------------------------------------------------------------------------

    def stream(self, stream: str, prefix: str = "") -> list[tuple[str, bytes]]:
        """Every message stored in ``stream`` (read as the ops user), optionally by subject prefix."""

        async def body() -> list[tuple[str, bytes]]:
            nc = await nats.connect(**self.nats.connect_kwargs("ops"))
            try:
                js = nc.jetstream()
                try:
                    info = await js.stream_info(stream)
                except nats.js.errors.NotFoundError:
                    return []
                out: list[tuple[str, bytes]] = []
                if not info.state.messages:
                    return out
                for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                    try:
                        msg = await js.get_msg(stream, seq)
                    except nats.js.errors.NotFoundError:
                        continue
                    if msg.subject.startswith(prefix):
                        out.append((msg.subject, msg.data or b""))
                return out
            finally:
                await nc.close()

        return run(body())

    def opened(self, prefix: str, sub: str) -> list[dict[str, Any]]:
        """The events under ``prefix`` about ``sub`` as a consumer sees them: sealed facts opened
        with the subject's event key (read as the ``escalation`` user), merged into the body."""
        p = self.pseudonym(sub)
        raw = [data for _, data in self.stream("CHECKIN", prefix) if p.encode() in data]

        async def body() -> list[dict[str, Any]]:
            bus = await _bus(self.nats, "escalation")
            try:
                keyring = EventKeyring(self.platform.secret("event_key_kek"))
                keyring.attach(bus)
                out = []
                for data in raw:
                    event, merged = parse_event(data), json.loads(data)
                    if isinstance(event, SealedEvent):
                        key = await keyring.get(p)
                        if key is None:
                            continue  # erased: nothing opens
                        merged.pop("sealed")
                        merged.update(event.open(key).model_dump(mode="json"))
                    out.append(merged)
                return out
            finally:
                await bus.close()

        return run(body()) if raw else []

    def wait(self, predicate: Callable[[], Any], what: str = "condition", timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def drained(self) -> None:
        """Every committed outbox row has been published (so absence in a stream means absence)."""
        from shared.bus.outbox import pending_count

        self.wait(lambda: pending_count(self.svc.runtime.engine) == 0, "outbox drained")

    def wait_stream(
        self, stream: str, prefix: str, count: int = 1, timeout: float = 10.0, containing: str | None = None
    ) -> list[tuple[str, bytes]]:
        """At least ``count`` messages under ``prefix`` (only those holding ``containing``, if given:
        the package's tests share one stream, so others' messages may already be there)."""

        def found() -> list[tuple[str, bytes]]:
            msgs = self.stream(stream, prefix)
            if containing is not None:
                msgs = [(subject, data) for subject, data in msgs if containing.encode() in data]
            return msgs if len(msgs) >= count else []

        return self.wait(found, f"{prefix}", timeout)

    # --- API -------------------------------------------------------------------------------------

    def checkin(self, sub: str, answers: dict[str, int] | None = None, **extra: Any) -> Any:
        body = {"answers": answers or WEEKLY_OK, **extra}
        return self.svc.client.post("/v1/checkins", json=body, headers=self.auth(sub))


# Every field a de-identified contribution may carry (``contribution.aggregate.recorded.v1``).
CONTRIBUTION_FIELDS = {"event_id", "type", "source", "org_unit", "iso_week", "metric", "value", "period_token"}


def deidentified(msg: Any, forbidden: list[str]) -> dict[str, Any]:
    """A contribution as the aggregator receives it, checked for ``forbidden`` text and trace
    context (which could link it to a request); returns its body."""
    text = msg.data.decode()
    assert not any(word in text for word in forbidden), text
    assert not any(k.lower() == "traceparent" for k in (msg.headers or {}))
    body: dict[str, Any] = json.loads(text)
    return body


def new_sub() -> str:
    """A fresh employee id: tests share one running service and stay apart by subject."""
    return f"E{uuid.uuid4().hex[:10]}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A check-in database at the head migration (SQLite or PostgreSQL, per ``db_url``)."""
    run_migrations(db_url, CHECKIN_MIGRATIONS)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="package")
def shared_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One check-in service for the package (starting one costs a few seconds of migrations and
    NATS set-up), with its own nats-server and database."""
    from shared.auth import Role, dev_token
    from shared.natsserver import USERS, free_port
    from tests.dbfixtures import db_urls

    root = tmp_path_factory.mktemp("checkin")
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with db_urls(root) as make_db_url, NatsServer(root / "nats", passwords=passwords) as server:
        server.provision()
        platform = PlatformSettings(mode="embedded", data_dir=root / "data", nats_url=server.url)
        kw = server.connect_kwargs("checkin")
        settings = CheckinSettings(
            port=free_port(), metrics_port=free_port(), database_url=make_db_url("checkin"), nats_user=kw["user"],
            nats_password=kw["password"], platform=platform, **FAST, **TEST_RATE_LIMITS,
        )  # fmt: skip
        svc = RunningService("checkin", settings).start()

        def make_token(sub: str, *roles: str) -> str:
            return dev_token(platform, sub, [Role(r) for r in (roles or ("employee",))])

        try:
            yield Harness(server, platform, svc, make_token)
        finally:
            svc.stop()


@pytest.fixture
def harness(shared_harness: Harness) -> Harness:
    return shared_harness


@pytest.fixture
def own_harness(service_nats, start_service, platform_settings, token) -> Harness:
    """A service of the test's own (for tests that stop or restart it)."""
    return Harness(service_nats, platform_settings, start_service("checkin", **FAST), token)


@dataclass
class CaseDesk:
    """The check-in service beside a real escalation service (same NATS, same platform secrets):
    shared notes open only for the counsellor holding the case (issue 11 item 8)."""

    harness: Harness
    escalation: RunningService

    def case_of(self, sub: str) -> str:
        from sqlmodel import Session, select

        from services.escalation.cases.models import Case

        subject = self.harness.pseudonym(sub)

        def find() -> str | None:
            with Session(self.escalation.runtime.engine) as session:
                return session.exec(select(Case.id).where(Case.pseudonym == subject)).first()

        return str(self.harness.wait(find, "escalation case"))

    def hold(self, sub: str, counsellor: str) -> str:
        """The counsellor acknowledges (and so holds) the case about ``sub``; returns its id."""
        case_id = self.case_of(sub)
        r = self.escalation.client.post(f"/v1/cases/{case_id}/ack", headers=self.harness.auth(counsellor, "counsellor"))
        assert r.status_code == 200, r.text
        return case_id

    def open_note(self, case_id: str, counsellor: str) -> Any:
        headers = self.harness.auth(counsellor, "counsellor")
        return self.harness.svc.client.post("/v1/shared-notes/open", json={"case_id": case_id}, headers=headers)


@pytest.fixture
def case_desk(own_harness: Harness, start_service) -> CaseDesk:  # type: ignore[no-untyped-def]
    return CaseDesk(own_harness, start_service("escalation"))


@pytest.fixture
def held_case_desk(own_harness: Harness, start_service) -> CaseDesk:  # type: ignore[no-untyped-def]
    """As :func:`case_desk`, with a 30-day legal hold: an erased subject's confirmed case stays."""
    return CaseDesk(own_harness, start_service("escalation", legal_hold_days=30))
