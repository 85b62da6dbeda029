"""HRIS ingress through the real consent service: a loopback HRIS sender signs with standardwebhooks
and posts over real HTTP; the check-in service (real, over the real nats-server) consumes the
``hris.subject.*`` events; a NATS client with the recommender's credentials reads its feed.

One platform (NATS, consent, check-in) serves the module; tests use fresh ids so they do not see
each other's employees or org units.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import ConsumerConfig
from sqlmodel import Session, select
from standardwebhooks import Webhook

from services.checkin.contributions import CONTRIBUTIONS
from services.consent.consents.models import ConsentHistory
from services.consent.directory.models import ContactDetail
from services.consent.hris.models import HrisOrgUnit, HrisSubject, HrisWebhookReceipt
from shared.auth import Role, dev_token
from shared.bus.outbox import pending_count
from shared.crypto import pseudonym
from shared.natsserver import USERS, NatsServer
from shared.settings import PlatformSettings
from shared.topology import consumer_name
from shared.webhooks import generate_secret
from tests.consent.conftest import service_settings, stop_all, wait_until
from tests.dbfixtures import db_urls
from tests.privacy.bus_scan import keyring_on, readable
from tests.servicefixtures import RunningService, bearer

SAMPLES = Path(__file__).parent / "samples"
PROBLEM = "application/problem+json"
HOOK = "/v1/webhooks/hris"
ROTATED_OUT, ROTATED_IN = generate_secret(), generate_secret()


class Hris:
    """The platform under test plus an HRIS that signs like a real one (Standard Webhooks)."""

    def __init__(
        self, nats_server: NatsServer, settings: PlatformSettings, consent: RunningService, checkin: RunningService
    ):
        self.nats, self.settings, self.consent, self.checkin = nats_server, settings, consent, checkin
        self.secret = consent.settings.hris_webhook_secrets[0].get_secret_value()  # type: ignore[attr-defined]

    def headers(
        self, body: bytes, *, msg_id: str | None = None, at: datetime | None = None, secret: str | None = None
    ) -> dict[str, str]:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        at = at or datetime.now(UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret or self.secret).sign(msg_id, at, body.decode()),
            "content-type": "application/json",
        }

    def send(self, payload: Any, path: str = HOOK, **kw: Any) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.consent.client.post(path, content=body, headers=self.headers(body, **kw))

    def auth(self, sub: str, *roles: str) -> dict[str, str]:
        return bearer(dev_token(self.settings, sub, [Role(r) for r in (roles or ("employee",))]))

    def pseudonym(self, employee_id: str) -> str:
        return pseudonym(self.settings.secret("pseudonym_key"), self.settings.tenant, employee_id)

    def consent_db(self) -> Session:
        return Session(self.consent.runtime.engine)

    def assignments(self, employee_id: str) -> list[tuple[str | None, str]]:
        """Check-in's own org-unit history of the subject (what its contributions are attributed by)."""
        with Session(self.checkin.runtime.engine) as s:
            rows = CONTRIBUTIONS.export(s, self.pseudonym(employee_id))
            return sorted(((r["org_unit"], r["effective_from"]) for r in rows), key=lambda a: a[1])

    def hris_stream(self) -> list[dict[str, Any]]:
        """Every message on the HRIS stream once consent's outbox is empty (read as ops, inspection only)."""
        wait_until(lambda: pending_count(self.consent.runtime.engine) == 0)

        async def body() -> list[dict[str, Any]]:
            nc = await nats.connect(**self.nats.connect_kwargs("ops"))
            try:
                js = nc.jetstream()
                keyring = keyring_on(nc, self.settings.secret("event_key_kek"))
                info = await js.stream_info("HRIS")
                out = []
                for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                    try:
                        msg = await js.get_msg("HRIS", seq)
                    except nats.js.errors.NotFoundError:
                        continue

                    # As its consumers read it: sealed facts opened (the KEK, the subject's key).
                    opened = await readable(keyring, msg.data)
                    out.append({"subject": msg.subject, "data": json.dumps(opened)})
                return out
            finally:
                await nc.close()

        return asyncio.run(body())

    def grant(self, employee_id: str, purpose: str, **body: Any) -> None:
        policy = self.consent.client.get("/v1/policy").json()
        body.setdefault("policy_version", next(p["version"] for p in policy["purposes"] if p["purpose"] == purpose))
        r = self.consent.client.put(f"/v1/me/consents/{purpose}", json=body, headers=self.auth(employee_id))
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def hris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hris]:
    root = tmp_path_factory.mktemp("hris-platform")
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with NatsServer(root / "nats", passwords=passwords) as server, db_urls(root) as make_db:
        server.provision()
        settings = PlatformSettings(mode="embedded", data_dir=root / "data", nats_url=server.url)
        rotation = {"hris_webhook_secrets": [ROTATED_OUT, ROTATED_IN]}
        services = [
            RunningService(name, service_settings(name, make_db(name), server, settings, **kw))
            for name, kw in (("consent", rotation), ("checkin", {}))
        ]
        try:
            for svc in services:  # one at a time: Alembic's globals are per process
                svc.start()
            yield Hris(server, settings, services[0], services[1])
        finally:
            stop_all(services)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def org(unit: str, parent: str | None = None, name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"org_unit_id": unit}
    if parent:
        body["parent_id"] = parent
    if name:
        body["name"] = name
    return {"type": "org_unit.created", "org_unit": body}


def employee(employee_id: str, unit: str | None = None, kind: str = "employee.created", **attrs: Any) -> dict[str, Any]:
    return {"type": kind, "employee": {"employee_id": employee_id, **({"org_unit": unit} if unit else {}), **attrs}}


# --- the happy path: org tree and subject -> org unit reach check-in -----------------------------


def test_signed_webhooks_build_the_org_tree_and_checkin_gets_the_mapping(hris):
    root, eng = fresh("acme"), fresh("eng")
    alice, bob = fresh("E"), fresh("E")
    batch = {
        "events": [
            org(root, name="Acme GmbH"),
            org(eng, root, name="Jana's team"),
            employee(
                alice,
                eng,
                country="DE",
                language="de",
                role_family="engineering",
                manager_id=bob,
                effective_from="2026-01-05",
            ),  # fmt: skip
            employee(bob, root),
        ]
    }
    r = hris.send(batch)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 4 and r.json()["replayed"] is False
    assert r.json()["published"] == 4  # 2 org units + 2 assignments; no profile without consent

    wait_until(lambda: hris.assignments(alice) == [(eng, "2026-01-05")])
    today = datetime.now(UTC).date().isoformat()
    wait_until(lambda: hris.assignments(bob) == [(root, today)])

    with hris.consent_db() as s:
        unit = s.get(HrisOrgUnit, eng)
        assert unit is not None and unit.parent == root and unit.state == "active"
        subject = s.get(HrisSubject, hris.pseudonym(alice))
        assert subject is not None and (subject.org_unit, subject.country, subject.role_family) == (
            eng,
            "DE",
            "engineering",
        )
        stored = json.dumps([r.model_dump(mode="json") for r in s.exec(select(HrisSubject))])
    assert alice not in stored and bob not in stored  # pseudonyms only; the manager id is not kept

    # A move is published once; the same facts again publish nothing.
    moved = employee(alice, root, kind="employee.updated", effective_from="2026-03-01")
    assert hris.send(moved).json()["published"] == 1
    assert hris.send(moved).json()["published"] == 0  # a new webhook id, but nothing changed
    wait_until(lambda: hris.assignments(alice) == [(eng, "2026-01-05"), (root, "2026-03-01")])


def test_a_units_manager_reaches_the_aggregator_only_as_a_keyed_reference(hris):
    """The aggregator scopes a manager's view by ``hris.org.manager_scope.v1``: no employee id,
    and not the platform pseudonym (which the aggregator must not be able to compute)."""
    unit, other, boss, successor = fresh("sales"), fresh("sales"), fresh("M"), fresh("M")

    def ref(employee_id: str) -> str:
        return pseudonym(hris.settings.secret("manager_scope_key"), hris.settings.tenant, employee_id)

    def scopes() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for msg in hris.hris_stream():
            if msg["subject"] == "hris.org.manager_scope.v1":
                body = json.loads(msg["data"])
                found[body["manager_ref"]] = body["org_units"]  # the last one wins
        return found

    head = {"type": "org_unit.created", "org_unit": {"org_unit_id": unit, "manager_id": boss}}
    second = {"type": "org_unit.created", "org_unit": {"org_unit_id": other, "manager_id": boss}}
    assert hris.send({"events": [head, second]}).status_code == 200
    assert scopes()[ref(boss)] == sorted([unit, other])
    raw = json.dumps(hris.hris_stream())
    assert boss not in raw and hris.pseudonym(boss) not in raw and ref(boss) != hris.pseudonym(boss)

    handover = {"type": "org_unit.created", "org_unit": {"org_unit_id": unit, "manager_id": successor}}
    assert hris.send(handover).json()["published"] == 2  # the former manager's scope shrinks too
    assert scopes()[ref(boss)] == [other] and scopes()[ref(successor)] == [unit]


def test_a_replayed_webhook_answers_2xx_and_changes_nothing(hris):
    unit, emp = fresh("ops"), fresh("E")
    body = json.dumps({"events": [org(unit), employee(emp, unit)]}).encode()
    headers = hris.headers(body, msg_id=f"msg_{uuid.uuid4().hex}")
    first = hris.consent.client.post(HOOK, content=body, headers=headers)
    assert first.status_code == 200 and first.json()["published"] == 2
    wait_until(lambda: hris.assignments(emp))
    before = len(hris.hris_stream())

    # The HRIS retries the very same message (same id), and an attacker replays it within 5 minutes.
    for _ in range(2):
        again = hris.consent.client.post(HOOK, content=body, headers=headers)
        assert again.status_code == 200 and again.json() | {"replayed": True} == again.json()
        assert again.json()["published"] == 0
    # Even a changed body under a processed id is a replay (the id is the key): nothing applied.
    other = json.dumps(employee(emp, fresh("x"), kind="employee.updated")).encode()
    r = hris.consent.client.post(HOOK, content=other, headers=hris.headers(other, msg_id=headers["webhook-id"]))
    assert r.status_code == 200 and r.json()["replayed"] is True
    assert len(hris.hris_stream()) == before
    with hris.consent_db() as s:
        assert s.get(HrisSubject, hris.pseudonym(emp)).org_unit == unit  # type: ignore[union-attr]
        assert s.get(HrisWebhookReceipt, headers["webhook-id"]) is not None


# --- bad input: 4xx problem+json, nothing stored, nothing published ------------------------------


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong-secret", 401, "invalid-webhook-signature"),
        ("edited-body", 401, "invalid-webhook-signature"),
        ("stale", 401, "invalid-webhook-signature"),
        ("no-signature", 401, "invalid-webhook-signature"),
        ("unknown-type", 422, "unknown-event-type"),
        ("extra-field", 422, "validation-error"),
        ("not-json", 400, "malformed-json"),
        ("oversized", 413, "payload-too-large"),
        ("unknown-vendor", 404, "unknown-vendor"),
        ("left-unknown", 422, "unknown-employee"),
        ("org-cycle", 422, "org-cycle"),
    ],
)
def test_bad_webhooks_are_4xx_problem_json_and_change_nothing(hris, case, status, code):
    emp, unit = fresh("E"), fresh("u")
    payload: Any = {"events": [org(unit), employee(emp, unit, country="FR")]}
    body = json.dumps(payload).encode()
    headers = hris.headers(body)
    path = HOOK
    if case == "wrong-secret":
        headers = hris.headers(body, secret="whsec_" + "A" * 43 + "=")
    elif case == "edited-body":
        body = body.replace(b"FR", b"DE")
    elif case == "stale":
        headers = hris.headers(body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "no-signature":
        del headers["webhook-signature"]
    elif case == "unknown-type":
        body = json.dumps({"type": "employee.promoted", "employee_id": emp}).encode()
    elif case == "extra-field":
        body = json.dumps(employee(emp, unit, name="Bryony Quillfeather")).encode()
    elif case == "not-json":
        body = b"{not json"
    elif case == "oversized":
        body = json.dumps({"events": [org(f"{unit}-{i}") for i in range(2000)]}).encode()
    elif case == "unknown-vendor":
        path = f"{HOOK}/workday"
    elif case == "left-unknown":
        body = json.dumps({"events": [org(unit), {"type": "employee.left", "employee_id": emp}]}).encode()
    elif case == "org-cycle":
        child = fresh("c")
        assert hris.send({"events": [org(unit), org(child, unit)]}).status_code == 200
        body = json.dumps({"events": [employee(emp, unit), {"type": "org_unit.moved", "org_unit_id": unit,
                                                            "parent_id": child}]}).encode()  # fmt: skip
    if case not in ("wrong-secret", "edited-body", "stale", "no-signature"):
        headers = hris.headers(body, msg_id=headers["webhook-id"])
    before = len(hris.hris_stream())

    r = hris.consent.client.post(path, content=body, headers=headers)
    assert r.status_code == status and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["type"].endswith("/" + code)
    assert emp not in r.text and "Quillfeather" not in r.text  # never echoed
    assert len(hris.hris_stream()) == before
    with hris.consent_db() as s:
        assert s.get(HrisWebhookReceipt, headers["webhook-id"]) is None  # the sender may retry once fixed
        assert s.get(HrisSubject, hris.pseudonym(emp)) is None


def test_while_a_secret_is_rotated_both_secrets_verify(hris):
    old, new = (s.get_secret_value() for s in hris.consent.settings.hris_webhook_secrets)
    for secret in (old, new):
        body = json.dumps(org(fresh("rot"))).encode()
        r = hris.consent.client.post(HOOK, content=body, headers=hris.headers(body, secret=secret))
        assert r.status_code == 200, r.text


# --- leaving ---------------------------------------------------------------------------------------


def test_an_employee_who_leaves_loses_every_consent_and_contact_details_and_gates_deny(hris):
    emp, unit = fresh("E"), fresh("sales")
    assert (
        hris.send({"events": [org(unit), employee(emp, unit, country="ES", effective_from="2026-01-01")]}).status_code
        == 200
    )
    hris.grant(emp, "checkin")
    hris.grant(emp, "escalation", contact={"preferred_channel": "email", "email": "leaver@example.com"})
    subject = hris.pseudonym(emp)
    gate = hris.checkin.runtime.gate
    wait_until(lambda: gate.allowed(subject, "checkin") and gate.allowed(subject, "escalation"))

    left = {"type": "employee.left", "employee_id": emp, "left_on": "2026-06-30"}
    r = hris.send(left)
    assert r.status_code == 200 and r.json()["published"] == 1, r.text  # SubjectLeft (KV puts, consent changes: too)

    wait_until(lambda: not gate.allowed(subject, "checkin") and not gate.allowed(subject, "escalation"))
    states = hris.consent.client.get("/v1/me/consents", headers=hris.auth(emp)).json()["consents"]
    assert {c["purpose"]: c["state"] for c in states if c["state"] != "not_given"} == {
        "checkin": "withdrawn",
        "escalation": "withdrawn",
    }
    wait_until(lambda: hris.assignments(emp)[-1] == (None, "2026-06-30"))  # check-in stops attributing
    with hris.consent_db() as s:
        assert s.exec(select(ContactDetail).where(ContactDetail.pseudonym == subject)).first() is None
        reasons = s.exec(select(ConsentHistory.reason).where(ConsentHistory.pseudonym == subject)).all()
        assert sorted(r for r in reasons if r) == ["left", "left"]
        row = s.get(HrisSubject, subject)
        assert row is not None and str(row.left_on) == "2026-06-30" and row.org_unit is None
        assert (row.role_family, row.country, row.language) == (None, None, None)

    before = len(hris.hris_stream())
    assert hris.send(left).json()["published"] == 0  # told again: nothing new
    assert len(hris.hris_stream()) == before


# --- what the recommender may see -----------------------------------------------------------------


def recommender_feed(hris: Hris) -> list[dict[str, Any]]:
    """Everything the recommender's own NATS user can read from the HRIS stream (its durable
    consumer), sealed facts opened as the recommender does (its KEK, the subject's key)."""
    name = consumer_name("recommender", "hris.personalization.>")

    async def body() -> list[dict[str, Any]]:
        nc = await nats.connect(**hris.nats.connect_kwargs("recommender"))
        try:
            js = nc.jetstream(timeout=3)
            keyring = keyring_on(nc, hris.settings.secret("event_key_kek"))
            await js.add_consumer(
                "HRIS", ConsumerConfig(name=name, durable_name=name, filter_subject="hris.personalization.>")
            )
            sub = await js.pull_subscribe_bind(name, stream="HRIS")
            out: list[dict[str, Any]] = []
            while True:
                try:
                    msgs = await sub.fetch(100, timeout=1)
                except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either, by code path
                    return out
                for msg in msgs:
                    opened = await readable(keyring, msg.data)
                    assert opened is not None and opened.get("sealed"), "a profile in the clear"
                    out.append(opened)
                    await msg.ack()
        finally:
            await nc.close()

    return asyncio.run(body())


def test_the_recommender_gets_a_profile_only_with_personalization_consent_and_never_ids(hris):
    unit = fresh("cs")
    consenting, later, never = fresh("E"), fresh("E"), fresh("E")
    hris.grant(consenting, "personalization")
    people = [
        employee(e, unit, role_family="support", country="DE", language="de", manager_id=m)
        for e, m in ((consenting, never), (later, consenting), (never, later))
    ]
    assert hris.send({"events": [org(unit, name="Bryony's crew"), *people]}).status_code == 200
    feed = wait_until(lambda: [p for p in recommender_feed(hris) if p["pseudonym"] == hris.pseudonym(consenting)])
    assert feed[0] | {"role_family": "support", "country": "DE", "language": "de"} == feed[0]

    hris.grant(later, "personalization")  # the profile HRIS sent earlier is published now
    seen = [p for p in wait_until(lambda: recommender_feed(hris)) if p["pseudonym"] == hris.pseudonym(later)]
    assert seen and seen[0]["country"] == "DE"

    everything = json.dumps(hris.hris_stream())
    for secret in (consenting, later, never, "Bryony"):
        assert secret not in everything  # no employee or manager id, no unit name on the bus
    assert hris.pseudonym(never) not in json.dumps(recommender_feed(hris))
    assert hris.pseudonym(never) not in [
        json.loads(m["data"]).get("pseudonym") for m in hris.hris_stream() if "personalization" in m["subject"]
    ]


def test_vendor_webhooks_are_mapped_and_their_personal_data_stays_out(hris):
    bamboo = (SAMPLES / "bamboohr_field_based.json").read_bytes()
    # Its leavers (40777, 40888) were never imported: 422, and the whole message is refused.
    r = hris.send(bamboo, path=f"{HOOK}/bamboohr")
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-employee")
    known = {"events": [employee("40777", "support"), employee("40888", "support")]}
    r = hris.consent.client.post("/v1/hris/import", json=known, headers=hris.auth("hr-bot", "integration"))
    assert r.status_code == 200, r.text
    r = hris.send(bamboo, path=f"{HOOK}/bamboohr")
    assert r.status_code == 200 and r.json()["vendor"] == "bamboohr", r.text
    merge = (SAMPLES / "merge_employee_changed.json").read_bytes()
    assert hris.send(merge, path=f"{HOOK}/merge").status_code == 200
    wait_until(lambda: hris.assignments("40123") == [("customer-success", "2026-01-31")])

    values = leaf_strings([json.loads(m["data"]) for m in hris.hris_stream()])
    for raw_id in ("40123", "40001", "40777", "40888", "19202938", "EMP-000217"):
        assert raw_id not in values  # only pseudonyms
    for personal in ("Bryony", "Quillfeather", "@", "Marguerite", "Hirschfeld", "5400.00", "123-45-6789", "Acme"):
        assert not any(personal in v for v in values)


def leaf_strings(value: Any) -> set[str]:
    """Every string (keys and values) anywhere in decoded JSON."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | set().union(*(leaf_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(leaf_strings(v) for v in value))
    return {str(value)}


def test_concurrent_deliveries_apply_once(hris):
    from concurrent.futures import ThreadPoolExecutor

    unit, emp = fresh("conc"), fresh("E")
    body = json.dumps({"events": [org(unit), employee(emp, unit, country="IT")]}).encode()
    same_id = hris.headers(body)
    # Four retries of one message and four other deliveries of the same facts, all at once.
    attempts = [same_id] * 4 + [hris.headers(body) for _ in range(4)]

    def post(headers: dict[str, str]) -> dict[str, Any]:
        with httpx.Client(base_url=hris.consent.url, timeout=30) as client:
            r = client.post(HOOK, content=body, headers=headers)
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, attempts))
    assert sum(1 for r in results[:4] if not r["replayed"]) == 1
    assert sum(r["published"] for r in results) == 2  # the unit and the assignment, once
    wait_until(lambda: hris.assignments(emp))
    subjects = [json.loads(m["data"]) for m in hris.hris_stream() if m["subject"] == "hris.subject.assigned.v2"]
    assert [s["org_unit"] for s in subjects if s["pseudonym"] == hris.pseudonym(emp)] == [unit]


def test_erasure_also_deletes_what_the_hris_told_us(hris):
    emp, unit = fresh("E"), fresh("fin")
    assert (
        hris.send({"events": [org(unit), employee(emp, unit, country="NL", role_family="finance")]}).status_code == 200
    )
    hris.grant(emp, "checkin")
    with hris.consent_db() as s:
        assert s.get(HrisSubject, hris.pseudonym(emp)) is not None
    assert hris.consent.client.delete("/v1/me", headers=hris.auth(emp)).status_code == 202
    with hris.consent_db() as s:
        assert s.get(HrisSubject, hris.pseudonym(emp)) is None
