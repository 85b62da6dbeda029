"""The ladder over real NATS and a loopback pager: an imminent flag pages rule 1 at once, no
acknowledgement pages rule 2 after its delay, then the external crisis service; an
acknowledgement stops it. Pages are signed and carry no personal data."""

from __future__ import annotations

import json
import time

from tests.escalation.conftest import FAST_POLICY, new_sub, put_policy
from tests.integrations.loopback import wait_until


def test_imminent_flag_pages_rule_one_then_rule_two_then_the_crisis_service(escalation):
    h = escalation
    put_policy(h)  # rule 1 -> c-first, rule 2 -> c-second after 1.5 s, then the crisis service
    pager = h.subscribe_pager("/pager")
    crisis = h.subscribe_pager("/crisis", ("escalation.page.external",))
    sub = new_sub()
    h.grant(sub)
    sent = time.time()
    event = h.flag(sub, "critical")
    first = wait_until(lambda: h.pages("/pager", pager), timeout=10)
    assert len(first) == 1 and first[0]["data"]["rule"] == 1 and first[0]["data"]["targets"] == ["c-first"]
    case_id = first[0]["data"]["case_ref"]
    assert first[0]["data"]["severity"] == "imminent"
    assert first[0]["data"]["console_url"].endswith(case_id)
    second = wait_until(lambda: h.pages("/pager", pager) if len(h.pages("/pager", pager)) >= 2 else None, timeout=10)
    assert second[1]["data"]["rule"] == 2 and second[1]["data"]["targets"] == ["c-second"]
    assert second[1]["timestamp"] >= second[0]["timestamp"]
    paged_at = [hit.at for hit in h.receiver.hits_on("/pager")]
    assert paged_at[-1] - paged_at[0] >= 1.4  # the rule's delay, not sooner
    external = wait_until(lambda: h.pages("/crisis", crisis), timeout=10)
    assert external[0]["data"]["case_ref"] == case_id and "targets" not in external[0]["data"]
    # No personal data in any page: no pseudonym, employee id, check-in ref or reason.
    raw = b"".join(hit.body for hit in h.receiver.hits)
    for secret in (h.pseudonym(sub), sub, str(event.checkin_ref), "self_harm"):
        assert secret.encode() not in raw
    assert time.time() - sent < 15
    time.sleep(2)  # the ladder has ended: nothing more
    assert len(h.pages("/pager", pager)) == 2 and len(h.pages("/crisis", crisis)) == 1


def test_acknowledging_stops_the_ladder(escalation):
    h = escalation
    # A 4 s delay: room for the acknowledgement on a loaded machine before rule 2 would be due.
    slow = {
        **FAST_POLICY,
        "rules": [{**r, "ack_delay_seconds": {**r["ack_delay_seconds"], "imminent": 4}} for r in FAST_POLICY["rules"]],
    }
    put_policy(h, slow)
    pager = h.subscribe_pager("/pager", ("escalation.page.triggered", "escalation.page.resolved"))
    sub = new_sub()
    h.grant(sub)
    h.flag(sub, "critical")
    first = wait_until(lambda: h.pages("/pager", pager), timeout=10)
    case_id = first[0]["data"]["case_ref"]
    r = h.svc.client.post(f"/v1/cases/{case_id}/ack", headers=h.counsellor("c-first"))
    assert r.status_code == 200 and r.json()["acknowledged"] is True
    wait_until(lambda: any(p["type"] == "escalation.page.resolved" for p in h.pages("/pager", pager)))
    time.sleep(4.5)  # past rule 2's delay
    triggered = [p for p in h.pages("/pager", pager) if p["type"] == "escalation.page.triggered"]
    assert [p["data"]["rule"] for p in triggered] == [1]
    resolved = [p for p in h.pages("/pager", pager) if p["type"] == "escalation.page.resolved"]
    assert json.loads(json.dumps(resolved[0]["data"])) == {"case_ref": case_id, "reason": "acknowledged"}


def test_policies_and_rosters_are_admin_documents_validated_strictly(escalation):
    h = escalation
    client, admin = h.svc.client, h.admin()
    assert client.get("/v1/policies", headers=admin).json()["version"] == 0  # the default until one is PUT
    for role in ("employee", "counsellor", "manager", "hr_analyst"):
        assert client.get("/v1/rosters", headers=h.auth("x", role)).status_code == 403
        assert client.put("/v1/policies", json=FAST_POLICY, headers=h.auth("x", role)).status_code == 403
    roster_policy = {**FAST_POLICY, "rules": [{**FAST_POLICY["rules"][0], "targets": [{"roster": "night-team"}]}]}
    r = client.put("/v1/policies", json=roster_policy, headers=admin)
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-roster")
    rosters = {"rosters": [{"name": "night-team", "timezone": "Europe/Paris", "shifts": [
        {"days": ["mon"], "start": "22:00", "end": "06:00", "members": ["c-night"]}]}]}  # fmt: skip
    bad_zone = {"rosters": [{**rosters["rosters"][0], "timezone": "Mars/Olympus"}]}
    assert client.put("/v1/rosters", json=bad_zone, headers=admin).status_code == 422
    assert client.put("/v1/rosters", json=rosters, headers=admin).json()["version"] == 1
    assert client.put("/v1/policies", json=roster_policy, headers=admin).json()["version"] == 1
    two_targets = {
        "targets": [{"counsellor": "a", "roster": "night-team"}],
        "ack_delay_seconds": {"imminent": 1, "high": 1, "moderate": 1},
    }
    assert client.put("/v1/policies", json={**FAST_POLICY, "rules": [two_targets]}, headers=admin).status_code == 422
    assert client.get("/v1/policies", headers=admin).json()["policy"]["rules"][0]["targets"] == [
        {"counsellor": None, "roster": "night-team", "group": None}
    ]
