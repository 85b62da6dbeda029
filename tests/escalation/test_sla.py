"""SLA figures reach the aggregator's stream as de-identified contributions: hours to acknowledge
and to contact, under ``aggregate_insights`` only, with the org unit, week and period token and
nothing else (no subject, no case, no trace headers)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Any

import nats
from sqlalchemy import select
from sqlmodel import Session

from services.escalation.sla.models import CONTRIBUTIONS
from shared.crypto import period_token
from shared.events.contribution import ContributionRecorded
from shared.events.hris import SubjectAssigned
from tests.consentevents import consent_changed
from tests.escalation.conftest import Escalation, _bus, escalation_overrides, new_sub, publish_as, put_consents
from tests.integrations.loopback import wait_until


def _contributions(h: Escalation) -> list[tuple[dict, dict]]:  # type: ignore[type-arg]
    async def body() -> list[tuple[dict, dict]]:  # type: ignore[type-arg]
        nc = await nats.connect(**h.nats.connect_kwargs("ops"))
        out = []
        try:
            sub = await nc.jetstream().subscribe("contribution.>", ordered_consumer=True)
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except Exception:  # noqa: BLE001 - caught up
                    return out
                out.append((json.loads(msg.data), dict(msg.headers or {})))
        finally:
            await nc.close()

    return asyncio.run(body())


def test_ack_and_contact_times_leave_as_de_identified_contributions(
    start_service, service_nats, platform_settings, token, receiver
):
    svc = start_service("escalation", **escalation_overrides(sla_release_seconds=0.2))
    h = Escalation(service_nats, platform_settings, svc, receiver, token)
    sub, silent = new_sub(), new_sub()
    colleagues = [new_sub() for _ in range(platform_settings.k_anonymity - 2)]  # unit-sla has k members
    put_consents(service_nats, {h.pseudonym(sub): "granted"}, purpose="aggregate_insights")
    publish_as(
        service_nats,
        "consent",
        *(
            SubjectAssigned(pseudonym=h.pseudonym(s), org_unit="unit-sla", effective_from=date(2020, 1, 1))
            for s in (sub, silent, *colleagues)
        ),
    )
    wait_until(lambda: svc.runtime.gate.allowed(h.pseudonym(sub), "aggregate_insights"))
    hris = next(c for c in svc.runtime.consumers if "hris_subject" in c.name)
    wait_until(lambda: hris.applied >= platform_settings.k_anonymity)
    c = h.counsellor("c-sla")
    for s in (sub, silent):  # silent never consented to aggregate_insights: nothing of theirs leaves
        r = svc.client.post("/v1/me/support-requests", json={"note": "call me"}, headers=h.auth(s))
        case_id = r.json()["id"]
        assert svc.client.post(f"/v1/cases/{case_id}/ack", headers=c).status_code == 200
        assert svc.client.post(f"/v1/cases/{case_id}/contacted", headers=c).status_code == 200
    found = wait_until(lambda: _contributions(h) if len(_contributions(h)) >= 2 else None, timeout=15)
    assert len(found) == 2
    week = "{}-W{:02d}".format(*datetime.now(UTC).isocalendar()[:2])
    token_ = period_token(platform_settings.secret("period_key"), h.pseudonym(sub), week)
    metrics = set()
    for body, headers in found:
        event = ContributionRecorded.model_validate(body)
        assert event.source == "escalation" and event.org_unit == "unit-sla" and event.iso_week == week
        assert event.period_token == token_ and 0 <= event.value <= 0.1
        metrics.add(event.metric)
        text = json.dumps(body)
        assert h.pseudonym(sub) not in text and case_id not in text and "call me" not in text
        assert not any(k.lower() in ("traceparent", "tracestate") for k in headers)
    assert metrics == {"escalation_ack_hours", "escalation_contact_hours"}


def test_withdrawing_aggregate_insights_drops_held_figures_and_leaves_a_retraction(
    start_service, service_nats, platform_settings, token, receiver
):
    svc = start_service("escalation", **escalation_overrides(sla_release_seconds=3600))  # nothing released
    h = Escalation(service_nats, platform_settings, svc, receiver, token)
    sub = new_sub()
    p = h.pseudonym(sub)
    put_consents(service_nats, {p: "granted"}, purpose="aggregate_insights")
    publish_as(
        service_nats, "consent", SubjectAssigned(pseudonym=p, org_unit="unit-w", effective_from=date(2020, 1, 1))
    )
    wait_until(lambda: svc.runtime.gate.allowed(p, "aggregate_insights"))

    def unit() -> str | None:
        with Session(svc.runtime.engine) as session:
            return CONTRIBUTIONS.unit_on(session, p, date.today())

    wait_until(lambda: unit() == "unit-w")
    case_id = svc.client.post("/v1/me/support-requests", json={}, headers=h.auth(sub)).json()["id"]
    assert svc.client.post(f"/v1/cases/{case_id}/ack", headers=h.counsellor("c-w")).status_code == 200

    def held() -> list[str]:
        with Session(svc.runtime.engine) as session:
            return [json.loads(r.payload)["type"] for r in session.execute(select(CONTRIBUTIONS.tables.pending))]

    assert held() == ["contribution.aggregate.recorded.v1"]
    put_consents(service_nats, {p: "withdrawn"}, purpose="aggregate_insights")

    async def sealed() -> Any:  # as consent publishes it: sealed under the subject's event key
        bus = await _bus(service_nats, "consent")
        try:
            kek = platform_settings.secret("event_key_kek")
            return await consent_changed(bus, kek, p, "aggregate_insights", "withdrawn")
        finally:
            await bus.close()

    publish_as(service_nats, "consent", asyncio.run(sealed()))
    wait_until(lambda: held() == ["contribution.aggregate.retracted.v1"])
