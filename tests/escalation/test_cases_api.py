"""Cases over real NATS and HTTP: flags become proposed cases, requests confirmed ones, the queue
is ordered by severity then age, only counsellors see cases, and actions follow the state machine."""

from __future__ import annotations

import time

import pytest

from tests.escalation.conftest import new_sub
from tests.integrations.loopback import wait_until

PROBLEM = "application/problem+json"


def code(r):  # type: ignore[no-untyped-def]
    assert r.headers["content-type"].startswith(PROBLEM), r.text
    return r.json()["type"].rsplit("/", 1)[-1]


def test_flag_with_consent_opens_a_proposed_case_and_requests_open_confirmed_ones(escalation):
    h = escalation
    flagged, asked, refused = new_sub(), new_sub(), new_sub()
    h.grant(flagged)
    h.flag(flagged, "high")
    case = h.case_of(flagged)
    assert case["state"] == "proposed" and case["severity"] == "high" and case["reasons"] == ["self_harm_item"]
    assert case["source"] == "flag" and case["pages"] == 1  # rule 1 paged when it opened
    # A support request needs no consent at all.
    r = h.svc.client.post(
        "/v1/me/support-requests",
        json={
            "note": "Could someone call me this week?",
            "preferred_channel": "phone",
            "preferred_time": "after 17:00",
        },
        headers=h.auth(asked),
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "confirmed" and r.json()["source"] == "request"
    mine = h.svc.client.get("/v1/me/support-requests", headers=h.auth(asked)).json()["items"]
    assert [m["id"] for m in mine] == [r.json()["id"]]
    assert h.svc.client.get("/v1/me/support-requests", headers=h.auth(refused)).json()["items"] == []
    # No escalation consent and no request for contact: nothing is opened (the flag is dropped).
    h.grant(refused, state="withdrawn")
    h.flag(refused, "critical")
    h.flag(flagged, "critical", contact=True)  # published after: once it is applied, so was the other
    wait_until(lambda: len([c for c in h.cases() if c["source"] == "flag"]) == 2)
    assert not any(c["id"] for c in h.cases() if c["severity"] == "imminent" and c["state"] == "proposed")


def test_queue_is_ordered_by_severity_then_age(escalation):
    h = escalation
    subs = [new_sub() for _ in range(4)]
    h.grant(*subs)
    for sub, severity in zip(subs, ("routine", "high", "critical", "high"), strict=True):
        h.flag(sub, severity)
        wait_until(lambda s=sub: any(True for _ in [h.case_of(s)]))
        time.sleep(0.01)
    order = [(c["severity"], c["id"]) for c in h.cases()]
    ids = {h.case_of(s)["id"]: s for s in subs}
    assert [sev for sev, _ in order] == ["imminent", "high", "high", "moderate"]
    assert [ids[i] for _, i in order[1:3]] == [subs[1], subs[3]]  # the older high first


@pytest.mark.parametrize("role", ["employee", "manager", "hr_analyst", "admin"])
def test_only_counsellors_reach_case_endpoints(escalation, role):
    h = escalation
    sub = new_sub()
    h.grant(sub)
    h.flag(sub)
    case_id = h.case_of(sub)["id"]
    headers = h.auth("someone", role)
    calls = [("GET", "/v1/cases", None), ("GET", f"/v1/cases/{case_id}", None)]
    calls += [("POST", f"/v1/cases/{case_id}/{a}", None) for a in ("ack", "confirm", "contacted")]
    calls += [
        ("POST", f"/v1/cases/{case_id}/dismiss", {"reason": "duplicate"}),
        ("POST", f"/v1/cases/{case_id}/resolve", {"reason": "supported"}),
        ("POST", f"/v1/cases/{case_id}/notes", {"text": "n"}),
    ]
    for method, path, body in calls:
        r = h.svc.client.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, (method, path, r.status_code)
        assert code(r) == "forbidden"
    assert h.svc.client.get("/v1/cases").status_code == 401
    assert h.case_of(sub)["acknowledged"] is False  # nothing changed


def test_actions_need_the_holder_and_follow_the_state_machine(escalation):
    h = escalation
    sub = new_sub()
    h.grant(sub)
    h.flag(sub, "critical")
    case_id = h.case_of(sub)["id"]
    a, b = h.counsellor("c-a"), h.counsellor("c-b")
    post = h.svc.client.post
    assert code(post(f"/v1/cases/{case_id}/contacted", headers=a)) == "case-not-held"
    assert post(f"/v1/cases/{case_id}/ack", headers=a).json()["held_by_me"] is True
    assert code(post(f"/v1/cases/{case_id}/notes", json={"text": "x"}, headers=b)) == "case-held-by-another"
    assert code(post(f"/v1/cases/{case_id}/contacted", headers=a)) == "invalid-transition"  # proposed
    assert code(post(f"/v1/cases/{case_id}/resolve", json={"reason": "supported"}, headers=a)) == "invalid-transition"
    note = post(f"/v1/cases/{case_id}/notes", json={"text": "Left a voicemail"}, headers=a).json()
    assert note["history"][-1]["text"] == "Left a voicemail"
    # Another counsellor sees the history lines but not the texts.
    seen_by_b = h.svc.client.get(f"/v1/cases/{case_id}", headers=b).json()
    assert seen_by_b["history"][-1]["action"] == "note" and seen_by_b["history"][-1]["text"] is None
    assert post(f"/v1/cases/{case_id}/dismiss", json={"reason": "nope"}, headers=a).status_code == 422
    done = post(f"/v1/cases/{case_id}/dismiss", json={"reason": "false_positive"}, headers=a).json()
    assert done["state"] == "dismissed" and done["close_reason"] == "false_positive"
    assert code(post(f"/v1/cases/{case_id}/ack", headers=b)) == "case-closed"
    actions = [e["action"] for e in done["history"]]
    assert actions == ["opened", "acknowledged", "note", "dismissed"]
    assert h.cases() == [] and [c["id"] for c in h.cases(state="closed")] == [case_id]
    assert post("/v1/cases/" + "0" * 32 + "/ack", headers=a).status_code == 404
    assert post("/v1/cases/not-an-id/ack", headers=a).status_code == 422
