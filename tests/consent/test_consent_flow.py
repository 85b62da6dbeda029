"""Consent over the real platform: every gate follows grants, withdrawals and policy lapses;
receipts verify against the published JWKS; contact details are sealed and released audited."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from sqlmodel import select

from services.consent.consents.models import ConsentHistory
from services.consent.directory.models import ContactDetail, DirectoryEntry
from services.consent.directory.service import release_contact
from shared.auth import ReceiptInvalid, verify_receipt
from shared.errors import ConsentRequired
from tests.consent.conftest import Platform, new_sub, wait_until


def current_version(platform: Platform, purpose: str) -> int:
    policy = platform.consent.client.get("/v1/policy").json()
    return next(p["version"] for p in policy["purposes"] if p["purpose"] == purpose)


def grant(platform: Platform, sub: str, purpose: str, **body: object) -> dict:
    body.setdefault("policy_version", current_version(platform, purpose))
    r = platform.consent.client.put(f"/v1/me/consents/{purpose}", json=body, headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    return r.json()


def state_of(platform: Platform, sub: str, purpose: str, lang: str = "en") -> dict:
    r = platform.consent.client.get("/v1/me/consents", params={"lang": lang}, headers=platform.auth(sub))
    return next(c for c in r.json()["consents"] if c["purpose"] == purpose)


def new_version_body(platform: Platform, purpose: str, **changes: object) -> dict:
    """The current terms of ``purpose`` with ``changes`` applied, as a PolicyVersionCreate body."""
    versions = platform.consent.client.get(
        "/v1/admin/purposes", params={"limit": 200}, headers=platform.auth("A1", "admin")
    ).json()
    current = next(v for p in versions if p["purpose"] == purpose for v in p["versions"] if v["current"])
    texts = {}
    for lang in ("en", "es", "fr"):
        read = platform.consent.client.get(f"/v1/policy/{purpose}/versions", params={"lang": lang, "limit": 200}).json()
        latest = read["versions"][-1]
        texts[lang] = {"title": latest["title"], "description": latest["description"]}
    body = {
        "texts": texts,
        "data_categories": current["data_categories"],
        "recipients": current["recipients"],
        "retention_days": current["retention_days"],
        "legal_basis": current["legal_basis"],
        "material": False,
    }
    body.update(changes)
    return body


def test_grant_reaches_every_gate_and_withdrawal_stops_every_gate(platform):
    sub = new_sub()
    subject = platform.pseudonym(sub)
    assert state_of(platform, sub, "checkin")["state"] == "not_given"  # opt-in: nothing by default
    assert platform.gates(subject, "checkin") == {"checkin": False, "recommender": False, "escalation": False}

    granted = grant(platform, sub, "checkin", channel="mobile", language="es")
    assert granted["state"] == "granted" and granted["channel"] == "mobile" and granted["language"] == "es"
    wait_until(lambda: all(platform.gates(subject, "checkin").values()))
    assert not any(platform.gates(subject, "personalization").values())  # purpose by purpose

    r = platform.consent.client.delete("/v1/me/consents/checkin", headers=platform.auth(sub))
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    wait_until(lambda: not any(platform.gates(subject, "checkin").values()))

    history = platform.consent.client.get("/v1/me/consents/history", headers=platform.auth(sub)).json()["entries"]
    assert [(e["purpose"], e["state"]) for e in history] == [("checkin", "granted"), ("checkin", "withdrawn")]
    assert all(e["receipt_id"] for e in history)


def test_material_policy_change_lapses_consent_and_the_employee_sees_why(platform):
    sub, admin = new_sub(), platform.auth("A1", "admin")
    subject = platform.pseudonym(sub)
    old = current_version(platform, "work_patterns")
    grant(platform, sub, "work_patterns")
    wait_until(lambda: all(platform.gates(subject, "work_patterns").values()))

    summary = {
        "en": "HR now also shares your team's office location.",
        "es": "RR. HH. ahora también comparte la oficina de tu equipo.",
        "fr": "Les RH partagent désormais aussi le site de votre équipe.",
    }
    body = new_version_body(platform, "work_patterns")
    body["data_categories"] = [*body["data_categories"], "office_location"]  # a change of terms
    for lang, text in summary.items():
        body["texts"][lang]["change_summary"] = text
    r = platform.consent.client.post("/v1/admin/purposes/work_patterns/versions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["policy"]["version"] == old + 1 and r.json()["policy"]["material"] is True
    assert r.json()["lapsed_consents"] >= 1

    wait_until(lambda: not any(platform.gates(subject, "work_patterns").values()))
    seen = state_of(platform, sub, "work_patterns", lang="fr")
    assert seen["state"] == "lapsed" and seen["policy_version"] == old
    assert seen["current_policy_version"] == old + 1
    assert seen["lapse"]["reason"] == "policy_updated" and seen["lapse"]["new_version"] == old + 1
    assert seen["lapse"]["summary"] == summary["fr"]

    # The lapsed version can no longer be granted; the new one can.
    r = platform.consent.client.put(
        "/v1/me/consents/work_patterns", json={"policy_version": old}, headers=platform.auth(sub)
    )
    assert r.status_code == 409 and r.json()["current_version"] == old + 1
    grant(platform, sub, "work_patterns", policy_version=old + 1)
    wait_until(lambda: all(platform.gates(subject, "work_patterns").values()))


def test_editorial_policy_change_keeps_consents(platform):
    sub, admin = new_sub(), platform.auth("A1", "admin")
    subject = platform.pseudonym(sub)
    grant(platform, sub, "fairness_audit")
    body = new_version_body(platform, "fairness_audit")
    body["texts"]["en"]["description"] += " (Wording clarified.)"
    r = platform.consent.client.post("/v1/admin/purposes/fairness_audit/versions", json=body, headers=admin)
    assert r.status_code == 201 and r.json()["lapsed_consents"] == 0 and r.json()["policy"]["material"] is False
    assert state_of(platform, sub, "fairness_audit")["state"] == "granted"
    wait_until(lambda: all(platform.gates(subject, "fairness_audit").values()))


def _edit_payload(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


def test_receipts_verify_against_published_jwks_and_fail_when_edited(platform):
    sub = new_sub()
    receipt_id = grant(platform, sub, "personalization", language="fr", channel="web")["receipt_id"]
    r = platform.consent.client.get(f"/v1/me/receipts/{receipt_id}", headers=platform.auth(sub))
    assert r.status_code == 200
    token = r.json()["receipt"]
    jwks = platform.consent.client.get("/.well-known/jwks.json").json()  # as anyone would, over HTTP

    claims = verify_receipt(token, jwks)
    assert claims["consentReceiptID"] == receipt_id
    assert claims["piiPrincipalId"] == platform.pseudonym(sub)
    assert claims["purpose"] == "personalization" and claims["state"] == "granted"
    assert claims["policyVersion"] == current_version(platform, "personalization")
    assert claims["collectionMethod"] == "web" and claims["language"] == "fr"
    assert claims["jurisdiction"] and claims["tenant"] and claims["piiControllers"][0]["piiController"]
    assert claims["version"] and claims["consentTimestamp"] > 0
    assert sub not in token and sub not in json.dumps(claims)  # never the employee id

    with pytest.raises(ReceiptInvalid):
        verify_receipt(_edit_payload(token, state="withdrawn"), jwks)
    with pytest.raises(ReceiptInvalid):
        verify_receipt(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), jwks)

    withdrawal = platform.consent.client.delete("/v1/me/consents/personalization", headers=platform.auth(sub)).json()
    token = platform.consent.client.get(f"/v1/me/receipts/{withdrawal['receipt_id']}", headers=platform.auth(sub))
    assert verify_receipt(token.json()["receipt"], jwks)["state"] == "withdrawn"

    # Another employee cannot fetch it: not found, not forbidden (its existence is not revealed).
    r = platform.consent.client.get(f"/v1/me/receipts/{receipt_id}", headers=platform.auth(new_sub()))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_contact_details_are_sealed_and_released_only_audited_for_a_case(platform):
    sub = new_sub()
    subject = platform.pseudonym(sub)
    contact = {
        "preferred_channel": "phone",
        "phone": "+447700900123",
        "hours": "09:00-17:00",
        "timezone": "Europe/London",
    }
    grant(platform, sub, "escalation", contact=contact)

    with platform.consent_db() as session:
        stored = session.exec(select(ContactDetail).where(ContactDetail.pseudonym == subject)).all()
        assert {d.field for d in stored} == set(contact)
        assert all(b"+447700900123" not in d.ciphertext and b"Europe" not in d.ciphertext for d in stored)
        assert sub.encode() not in session.get(DirectoryEntry, subject).employee_id
        ctx = platform.consent.app.state.consent
        case_id = uuid.uuid4()
        assert release_contact(session, subject, "C-77", case_id, ctx=ctx) == contact
        session.commit()

    log = platform.consent.client.get("/v1/me/access-log", headers=platform.auth(sub)).json()
    assert log["complete"] is True
    (entry,) = log["entries"]
    assert entry["service"] == "consent" and entry["actor_role"] == "counsellor"
    assert entry["action"] == f"contact.released:{case_id}" and entry["purpose"] == "escalation"
    assert entry["actor"] == platform.pseudonym("C-77")

    # Withdrawing escalation deletes the details: nothing left to release.
    platform.consent.client.delete("/v1/me/consents/escalation", headers=platform.auth(sub))
    with platform.consent_db() as session:
        assert not session.exec(select(ContactDetail).where(ContactDetail.pseudonym == subject)).all()
        with pytest.raises(ConsentRequired):
            release_contact(session, subject, "C-77", case_id, ctx=ctx)
        assert session.exec(select(ConsentHistory).where(ConsentHistory.pseudonym == subject)).all()
