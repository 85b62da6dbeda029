"""Erasure across the platform: at once here and in every gate, then tracked to completion,
across a restart of the consent service and with re-publication when a request is lost."""

from __future__ import annotations

from sqlmodel import select

from services.consent.consents.models import ConsentHistory
from services.consent.directory.models import ContactDetail, DirectoryEntry
from services.consent.erasure.models import ErasureRequest
from tests.consent.conftest import Platform, new_sub, wait_until
from tests.consent.test_consent_flow import grant


def erasure_status(platform: Platform, sub: str, request_id: str) -> dict:
    r = platform.consent.client.get(f"/v1/me/erasure/{request_id}", headers=platform.auth(sub))
    assert r.status_code == 200, r.text
    return r.json()


def request_erasure(platform: Platform, sub: str) -> str:
    r = platform.consent.client.delete("/v1/me", headers=platform.auth(sub))
    assert r.status_code == 202, r.text
    assert r.headers["location"].endswith(f"/v1/me/erasure/{r.json()['request_id']}")
    return str(r.json()["request_id"])


def test_erasure_withdraws_in_every_gate_at_once_and_completes_when_all_acknowledge(platform):
    sub = new_sub()
    subject = platform.pseudonym(sub)
    receipt_id = grant(platform, sub, "checkin")["receipt_id"]
    grant(platform, sub, "escalation", contact={"preferred_channel": "email", "email": "me@example.org"})
    wait_until(lambda: all(platform.gates(subject, "escalation").values()))

    request_id = request_erasure(platform, sub)
    gates = lambda: [*platform.gates(subject, "checkin").values(), *platform.gates(subject, "escalation").values()]  # noqa: E731
    wait_until(lambda: not any(gates()))
    status = wait_until(lambda: (s := erasure_status(platform, sub, request_id))["status"] == "completed" and s)
    assert {s["service"]: s["status"] for s in status["services"]} == {
        "checkin": "acknowledged",
        "recommender": "acknowledged",
        "aggregator": "acknowledged",
        "escalation": "acknowledged",
    }
    assert status["completed_at"] is not None

    client, auth = platform.consent.client, platform.auth(sub)
    assert all(c["state"] == "not_given" for c in client.get("/v1/me/consents", headers=auth).json()["consents"])
    assert client.get("/v1/me/consents/history", headers=auth).json() == {"entries": [], "next_cursor": None}
    assert client.get(f"/v1/me/receipts/{receipt_id}", headers=auth).status_code == 404
    # Someone else cannot see the request.
    assert client.get(f"/v1/me/erasure/{request_id}", headers=platform.auth(new_sub())).status_code == 404

    with platform.consent_db() as session:
        assert session.get(DirectoryEntry, subject) is None
        assert not session.exec(select(ContactDetail).where(ContactDetail.pseudonym == subject)).all()
        kept = session.exec(select(ConsentHistory).where(ConsentHistory.erasure_request_id == request_id)).all()
        # What is kept: receipt ids, purposes, states, times; no subject, no signed receipt.
        assert receipt_id in {h.receipt_id for h in kept}
        assert all(h.pseudonym is None and h.receipt_jws is None for h in kept)
        assert {(h.purpose, h.state, h.reason) for h in kept} >= {("checkin", "withdrawn", "erasure")}
        request = session.get(ErasureRequest, request_id)
        assert request.pseudonym is None  # gone once every service has acknowledged


def test_erasure_survives_a_consent_restart_and_is_republished_until_acknowledged(platform):
    sub = new_sub()
    subject = platform.pseudonym(sub)
    grant(platform, sub, "checkin")
    checkin = platform.services["checkin"]
    checkin.stop()
    try:
        request_id = request_erasure(platform, sub)
        wait_until(
            lambda: (
                {
                    s["service"]
                    for s in erasure_status(platform, sub, request_id)["services"]
                    if s["status"] == "pending"
                }
                == {"checkin"}
            )
        )
        platform.consent.restart()
        assert erasure_status(platform, sub, request_id)["status"] == "pending"  # the request is durable

        # Lose every copy published so far: only re-publication can complete the request now.
        platform.ops(lambda js: js.purge_stream("SUBJECT"))
        before = erasure_status(platform, sub, request_id)["attempts"]
    finally:
        checkin.start()
    status = wait_until(lambda: (s := erasure_status(platform, sub, request_id))["status"] == "completed" and s, 20)
    assert status["attempts"] > before
    assert all(s["status"] == "acknowledged" for s in status["services"])
    assert not any(platform.gates(subject, "checkin").values())
