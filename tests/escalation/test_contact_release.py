"""Human in the loop, with the real consent and escalation services over real NATS: a proposed case
never reveals contact details; the holder's confirmation fetches them from consent's directory
over an audited request/reply, and the employee sees that access in their access log."""

from __future__ import annotations

from tests.escalation.conftest import Escalation, escalation_overrides, new_sub
from tests.integrations.loopback import wait_until

CONTACT = {"preferred_channel": "phone", "phone": "+447700900123", "hours": "09:00-18:00"}


def _grant_with_contact(consent, h: Escalation, sub: str) -> None:  # type: ignore[no-untyped-def]
    policy = consent.client.get("/v1/policy").json()
    version = next(p["version"] for p in policy["purposes"] if p["purpose"] == "escalation")
    body = {"policy_version": version, "contact": CONTACT}
    r = consent.client.put("/v1/me/consents/escalation", json=body, headers=h.auth(sub))
    assert r.status_code == 200, r.text
    wait_until(lambda: h.svc.runtime.gate.allowed(h.pseudonym(sub), "escalation"))


def test_only_the_holders_confirmation_reveals_contact_and_the_employee_sees_it(
    start_service, service_nats, platform_settings, token, receiver
):
    consent = start_service("consent")
    svc = start_service("escalation", **escalation_overrides())
    h = Escalation(service_nats, platform_settings, svc, receiver, token)
    sub = new_sub()
    _grant_with_contact(consent, h, sub)
    h.flag(sub, "critical")
    case = h.case_of(sub)
    assert case["state"] == "proposed"
    # Nothing in the proposed case reveals how to reach the person.
    listed = (
        svc.client.get("/v1/cases", headers=h.counsellor()).text
        + svc.client.get(f"/v1/cases/{case['id']}", headers=h.counsellor()).text
    )
    assert "+447700900123" not in listed and h.pseudonym(sub) not in listed
    # Not held yet: confirming is refused and nothing is released.
    assert svc.client.post(f"/v1/cases/{case['id']}/confirm", headers=h.counsellor("c-a")).status_code == 409
    assert svc.client.post(f"/v1/cases/{case['id']}/ack", headers=h.counsellor("c-a")).status_code == 200
    assert svc.client.post(f"/v1/cases/{case['id']}/confirm", headers=h.counsellor("c-b")).status_code == 403
    log = consent.client.get("/v1/me/access-log", headers=h.auth(sub)).json()
    assert not any(str(e["action"]).startswith("contact.released") for e in _entries(log))

    r = svc.client.post(f"/v1/cases/{case['id']}/confirm", headers=h.counsellor("c-a"))
    assert r.status_code == 200, r.text
    assert r.json()["contact"] == CONTACT and r.json()["contact_source"] == "consent_directory"
    assert r.json()["case"]["state"] == "confirmed"
    log = consent.client.get("/v1/me/access-log", headers=h.auth(sub)).json()
    released = [e for e in _entries(log) if e["action"] == f"contact.released:{_uuid(case['id'])}"]
    assert len(released) == 1 and released[0]["actor_role"] == "counsellor" and released[0]["purpose"] == "escalation"
    assert released[0]["actor"] == h.pseudonym("c-a")

    # A dismissed case never reveals them again.
    svc.client.post(
        f"/v1/cases/{case['id']}/dismiss", json={"reason": "handled_elsewhere"}, headers=h.counsellor("c-a")
    )
    assert svc.client.post(f"/v1/cases/{case['id']}/confirm", headers=h.counsellor("c-a")).status_code == 409


def _entries(log: dict) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in log.get("entries", [])]


def _uuid(hex_id: str) -> str:
    import uuid

    return str(uuid.UUID(hex_id))
