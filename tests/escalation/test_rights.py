"""Subject rights in the escalation service: erasure removes cases unless a legal hold applies
(visible to the employee), export includes cases, their history and every access to them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import nats
from sqlmodel import Session, select

from services.escalation.cases.handlers import purge_expired_holds
from services.escalation.cases.models import Case, CaseEvent
from shared.datakeys import DataKey
from shared.events.subject import ErasureRequested, SubjectDataReply, SubjectDataRequest
from shared.topology import access_log_subject, export_subject
from shared.webhooks import WebhookDelivery
from tests.escalation.conftest import Escalation, escalation_overrides, new_sub, publish_as
from tests.integrations.loopback import wait_until


def _ask(h: Escalation, subject: str, pseudonym: str) -> dict:  # type: ignore[type-arg]
    async def body() -> dict:  # type: ignore[type-arg]
        nc = await nats.connect(**h.nats.connect_kwargs("consent"))
        try:
            msg = await nc.request(
                subject, SubjectDataRequest(pseudonym=pseudonym).model_dump_json().encode(), timeout=5
            )
            return SubjectDataReply.model_validate_json(msg.data).data
        finally:
            await nc.close()

    return asyncio.run(body())


def _request(h: Escalation, sub: str, note: str) -> str:
    body = {"note": note, "contact": {"phone": "+447700900999"}, "preferred_channel": "phone"}
    r = h.svc.client.post("/v1/me/support-requests", json=body, headers=h.auth(sub))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _erase(h: Escalation, sub: str) -> None:
    request_id = uuid.uuid4()
    event = ErasureRequested(request_id=request_id, pseudonym=h.pseudonym(sub), requested_at=datetime.now(UTC))
    publish_as(h.nats, "consent", event)
    consumer = next(c for c in h.svc.runtime.consumers if "subject_erasure" in c.name)
    before = consumer.applied
    wait_until(lambda: consumer.applied > before, timeout=15)


def test_export_holds_cases_history_with_the_employees_words_and_every_access(escalation):
    h = escalation
    sub = new_sub()
    p = h.pseudonym(sub)
    case_id = _request(h, sub, "I need to talk to someone")
    c = h.counsellor("c-9")
    assert h.svc.client.post(f"/v1/cases/{case_id}/ack", headers=c).status_code == 200
    assert (
        h.svc.client.get(f"/v1/cases/{case_id}", headers=c).json()["history"][0]["text"] == "I need to talk to someone"
    )
    confirmed = h.svc.client.post(f"/v1/cases/{case_id}/confirm", headers=c).json()
    assert confirmed["contact"] == {"phone": "+447700900999"} and confirmed["contact_source"] == "request"
    exported = _ask(h, export_subject("escalation"), p)
    assert [x["id"] for x in exported["cases"]] == [case_id]
    history = exported["cases"][0]["history"]
    assert [e["action"] for e in history][:3] == ["requested", "contact_given", "acknowledged"]
    assert history[0]["text"] == "I need to talk to someone"
    actions = [a["action"] for a in exported["accesses"]]
    assert f"case.request.read:{case_id}" in actions and f"contact.read:{case_id}" in actions
    log = _ask(h, access_log_subject("escalation"), p)["entries"]
    assert {e["actor"] for e in log} == {h.pseudonym("c-9")} and {e["purpose"] for e in log} == {"escalation"}
    assert _ask(h, export_subject("escalation"), h.pseudonym(new_sub())) == {}


def test_erasure_removes_cases_pages_and_the_key(escalation):
    h = escalation
    h.subscribe_pager()
    sub = new_sub()
    p = h.pseudonym(sub)
    _request(h, sub, "please call")
    h.grant(sub)
    h.flag(sub, "high")
    wait_until(lambda: len(h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json()["items"]) == 2)
    _erase(h, sub)
    with Session(h.svc.runtime.engine) as session:
        assert session.exec(select(Case).where(Case.pseudonym == p)).all() == []
        assert session.exec(select(DataKey).where(DataKey.pseudonym == p)).all() == []
        assert session.exec(select(CaseEvent)).all() == []  # the only cases in this database were theirs
        assert session.exec(select(WebhookDelivery).where(WebhookDelivery.subject == p)).all() == []
    assert h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json()["items"] == []


def test_a_legal_hold_keeps_confirmed_cases_visibly_until_it_ends(
    start_service, service_nats, platform_settings, token, receiver
):
    svc = start_service("escalation", **escalation_overrides(legal_hold_days=30))
    h = Escalation(service_nats, platform_settings, svc, receiver, token)
    sub = new_sub()
    p = h.pseudonym(sub)
    held_id = _request(h, sub, "call me please")  # confirmed: a professional's record, held
    h.grant(sub)
    h.flag(sub, "high")  # proposed: no outreach decided, not held
    wait_until(lambda: len(h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json()["items"]) == 2)
    mine = h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json()["items"]
    assert {m["id"]: m["legal_hold_applies"] for m in mine}[held_id] is True
    assert sorted(m["legal_hold_applies"] for m in mine) == [False, True]  # the employee sees it before erasing
    _erase(h, sub)
    after = h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json()["items"]
    assert [a["id"] for a in after] == [held_id]
    until = datetime.fromisoformat(after[0]["legal_hold_until"])
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30, minutes=1)
    exported = _ask(h, export_subject("escalation"), p)
    assert exported["cases"][0]["legal_hold_until"] is not None
    assert "erasure_deferred" in [e["action"] for e in exported["cases"][0]["history"]]
    ctx = svc.app.state.escalation
    with Session(svc.runtime.engine) as session:  # the hold ends: purged, key and all
        assert purge_expired_holds(session, ctx, datetime.now(UTC) + timedelta(days=29)) == 0
        assert purge_expired_holds(session, ctx, until + timedelta(seconds=1)) >= 2
        session.commit()
        assert session.exec(select(Case).where(Case.pseudonym == p)).all() == []
        assert session.exec(select(DataKey).where(DataKey.pseudonym == p)).all() == []
    assert (
        json.dumps(h.svc.client.get("/v1/me/support-requests", headers=h.auth(sub)).json())
        == '{"items": [], "next_cursor": null}'
    )
