"""Snapshot import into the real consent service (endpoint and ``kinwell hris import``), and HR's
consent rates by org unit with k-suppression that subtraction cannot undo."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from sqlmodel import Session, select

from services.consent.hris.models import HrisOrgUnit, HrisSubject
from services.consent.stats import service as stats
from shared.cli import main as kinwell
from shared.natsserver import NatsServer
from shared.release.guard import DIFFERENCING
from shared.release.rules import ReleaseRules
from tests.integrations.loopback import wait_until
from tests.servicefixtures import bearer

PROBLEM = "application/problem+json"


def hris_messages(server: NatsServer) -> int:
    """Messages stored on the HRIS stream so far (read as ops; inspection only)."""

    async def body() -> int:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            return int((await nc.jetstream().stream_info("HRIS")).state.messages)
        finally:
            await nc.close()

    return asyncio.run(body())


def settled(consent: Any, server: NatsServer) -> int:
    """The HRIS stream size once consent's outbox has published everything it holds."""
    from shared.bus.outbox import pending_count

    wait_until(lambda: pending_count(consent.runtime.engine) == 0)
    return hris_messages(server)


def snapshot(units: int = 3, per_unit: int = 4) -> dict[str, Any]:
    org_units = [{"org_unit_id": "acme", "name": "Acme"}]
    org_units += [{"org_unit_id": f"u{i}", "parent_id": "acme", "name": f"Team {i}"} for i in range(units)]
    employees = [
        {"employee_id": f"E{i}-{j}", "org_unit": f"u{i}", "country": "FR", "role_family": "ops"}
        for i in range(units)
        for j in range(per_unit)
    ]
    return {"org_units": org_units, "employees": employees}


@pytest.fixture
def consent(start_service):
    # Near noise-free statistics so decisions can be asserted (the noise is proved in tests/shared).
    return start_service("consent", stats_release=ReleaseRules(k=5, rho_count=8.0, rho_sum=8.0, rho_cap=100.0))


def test_the_import_endpoint_builds_the_tree_once_and_a_reimport_changes_nothing(consent, service_nats, token):
    doc = snapshot()
    admin = bearer(token("ops-admin", "admin"))
    r = consent.client.post("/v1/hris/import", json=doc, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"events": 16, "published": 16}  # 4 units + 12 assignments (no consent: no profiles)
    first = settled(consent, service_nats)
    assert first == 16

    again = consent.client.post("/v1/hris/import", json=doc, headers=bearer(token("hris-bot", "integration")))
    assert again.status_code == 200 and again.json() == {"events": 16, "published": 0}
    assert settled(consent, service_nats) == first

    with Session(consent.runtime.engine) as s:
        assert {u.org_unit: u.parent for u in s.exec(select(HrisOrgUnit))}["u2"] == "acme"
        assert len(s.exec(select(HrisSubject)).all()) == 12


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        ("employee", {"events": []}, 403, "forbidden"),
        ("hr_analyst", {"events": []}, 403, "forbidden"),
        (None, {"events": []}, 401, "unauthorized"),
        ("admin", {"events": []}, 422, "batch-size"),
        ("admin", {"employees": [{"employee_id": "E1", "email": "x@example.com"}]}, 422, "invalid-snapshot-record"),
        ("admin", {"events": [{"type": "salary.changed"}]}, 422, "invalid-snapshot-record"),
        (
            "admin",
            {"events": [{"type": "org_unit.created", "org_unit": {"org_unit_id": f"u{i}"}} for i in range(1001)]},
            422,
            "batch-size",
        ),  # fmt: skip
        ("admin", {"events": [{"type": "employee.left", "employee_id": "never-seen"}]}, 422, "unknown-employee"),
        ("admin", b"[{", 400, "malformed-json"),
    ],
)
def test_bad_imports_are_4xx_problem_json_and_change_nothing(consent, service_nats, token, who, body, status, code):
    headers = bearer(token("someone", who)) if who else {}
    content = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    before = settled(consent, service_nats)
    r = consent.client.post("/v1/hris/import", content=content, headers={**headers, "content-type": "application/json"})
    assert r.status_code == status and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["type"].endswith("/" + code)
    assert "x@example.com" not in r.text and "never-seen" not in r.text
    assert settled(consent, service_nats) == before
    with Session(consent.runtime.engine) as s:
        assert s.exec(select(HrisSubject)).first() is None


def test_the_cli_imports_a_jsonl_snapshot_in_batches_with_a_progress_bar(
    consent, service_nats, token, tmp_path: Path, capsys
):
    doc = snapshot(units=5, per_unit=50)
    lines = [{"type": "org_unit.created", "org_unit": u} for u in doc["org_units"]]
    lines += [{"type": "employee.created", "employee": e} for e in doc["employees"]]
    path = tmp_path / "acme.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    args = ["hris", "import", str(path), "--url", consent.url, "--token", token("hris-bot", "integration")]

    assert kinwell([*args, "--batch-size", "40"]) == 0
    out, err = capsys.readouterr()
    assert "imported 256 records in 7 requests; 256 platform events published" in out
    assert "100.0%" in err and "256 records" in err  # the bar reached the end
    assert settled(consent, service_nats) == 256

    assert kinwell(args) == 0  # again, after a failure or just to be sure: changes nothing
    assert "0 platform events published" in capsys.readouterr().out
    assert settled(consent, service_nats) == 256


def test_the_cli_stops_on_a_bad_record_before_sending_anything(consent, service_nats, token, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    good = {"type": "org_unit.created", "org_unit": {"org_unit_id": "ok"}}
    bad = {"type": "employee.created", "employee": {"employee_id": "E1", "name": "Bryony Quillfeather"}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert kinwell(["hris", "import", str(path), "--url", consent.url, "--token", token("b", "integration")]) == 2
    err = capsys.readouterr().err
    assert "record 2" in err and "nothing was imported" in err and "Quillfeather" not in err
    assert settled(consent, service_nats) == 0

    # A token without the role: refused, explained, exit 1.
    path.write_text(json.dumps(good) + "\n")
    assert kinwell(["hris", "import", str(path), "--url", consent.url, "--token", token("e", "employee")]) == 1
    assert "admin or integration" in capsys.readouterr().err


# --- consent rates by org unit ----------------------------------------------------------------------


def grant(consent: Any, token: Any, sub: str, purpose: str) -> None:
    version = next(p["version"] for p in consent.client.get("/v1/policy").json()["purposes"] if p["purpose"] == purpose)
    r = consent.client.put(f"/v1/me/consents/{purpose}", json={"policy_version": version}, headers=bearer(token(sub)))
    assert r.status_code == 200, r.text


def rates(consent: Any, token: Any) -> dict[str, dict[str, Any]]:
    r = consent.client.get("/v1/stats/consent-rates/org-units", headers=bearer(token("hr-1", "hr_analyst")))
    assert r.status_code == 200, r.text
    assert r.json()["k"] == 5
    return {u["org_unit"]: u for u in r.json()["org_units"]}


def rate(unit: dict[str, Any], purpose: str) -> float | None:
    return next(p["rate"] for p in unit["purposes"] if p["purpose"] == purpose)


def _next_week() -> datetime:
    return datetime.now(UTC) + timedelta(days=7)


def test_rates_by_org_unit_suppress_small_units_and_anything_subtraction_would_reveal(consent, token):
    # acme (1 direct) > eng > {web (5), ops (1)}; acme > sales (4); acme > hr (5); k = 5.
    tree = {"acme": None, "eng": "acme", "web": "eng", "ops": "eng", "sales": "acme", "hr": "acme"}
    sizes = {"acme": 1, "eng": 0, "web": 5, "ops": 1, "sales": 4, "hr": 5}
    doc = {
        "org_units": [{"org_unit_id": u, **({"parent_id": p} if p else {})} for u, p in tree.items()],
        "employees": [{"employee_id": f"{u}-{i}", "org_unit": u} for u, n in sizes.items() for i in range(n)],
    }
    assert consent.client.post("/v1/hris/import", json=doc, headers=bearer(token("a", "admin"))).status_code == 200
    for sub in ("web-0", "web-1", "hr-0", "ops-0"):
        grant(consent, token, sub, "checkin")

    seen = rates(consent, token)
    # Too small on their own.
    assert seen["ops"]["suppressed"] and seen["sales"]["suppressed"]
    assert seen["ops"]["group_size"] is None and rate(seen["ops"], "checkin") is None
    # eng (6) minus web (5) would be ops' one person: web is suppressed so eng can be released.
    assert seen["web"]["suppressed"] and not seen["eng"]["suppressed"]
    assert seen["eng"]["group_size"] == 6 and rate(seen["eng"], "checkin") == round(3 / 6, 4)
    # acme (16) minus eng (6) minus hr (5) = acme's 1 + sales' 4 = 5 >= k: both released.
    assert seen["acme"]["group_size"] == 16 and not seen["hr"]["suppressed"]
    assert rate(seen["hr"], "checkin") == 0.2
    # What is released never isolates fewer than k people by subtraction.
    released = {u: s["group_size"] for u, s in seen.items() if not s["suppressed"]}
    assert released == {"acme": 16, "eng": 6, "hr": 5}

    # Someone leaves. This week's reading is the stored release (issue 11.5: a second live reading
    # would give the leaver's consents by subtraction).
    left = {"events": [{"type": "employee.left", "employee_id": "hr-4"}]}
    assert consent.client.post("/v1/hris/import", json=left, headers=bearer(token("a", "admin"))).status_code == 200
    assert rates(consent, token) == seen
    # Next week's release: hr (4) is below k; acme differs from its last release by one person,
    # so it is held back rather than released anew; eng is unchanged and replays its figures.
    with Session(consent.runtime.engine) as session:
        after = stats.consent_rates_by_org_unit(session, consent.app.state.consent.release_rules, _next_week())
        session.commit()
    units = {u.org_unit: u for u in after.org_units}
    assert units["hr"].suppressed and units["acme"].suppressed and units["acme"].reason == DIFFERENCING
    assert not units["eng"].suppressed and units["eng"].group_size == 6


def test_only_hr_analysts_read_rates_by_org_unit(consent, token):
    for role in ("employee", "admin", "manager"):
        r = consent.client.get("/v1/stats/consent-rates/org-units", headers=bearer(token("x", role)))
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM


def test_the_cli_says_at_once_when_nothing_answers(tmp_path, capsys):
    from shared.natsserver import free_port

    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"type": "org_unit.created", "org_unit": {"org_unit_id": "a"}}) + "\n")
    url = f"http://127.0.0.1:{free_port()}"
    assert kinwell(["hris", "import", str(path), "--url", url, "--token", "t", "--no-progress"]) == 1
    assert "cannot reach the consent service" in capsys.readouterr().err


# --- settings ---------------------------------------------------------------------------------------


def test_production_refuses_to_start_without_an_hris_webhook_secret(tmp_path):
    from services.consent.config import ConsentSettings
    from shared.settings import PlatformSettings

    key = "k" * 40
    platform = PlatformSettings(
        mode="production",
        data_dir=tmp_path,
        pseudonym_key=key,
        period_key=key + "p",
        master_key=key + "m",
        event_key_kek=key + "e",
        audit_key=key + "a",
        manager_scope_key=key + "s",
        receipt_signing_key="-----BEGIN PRIVATE KEY-----",
        dev_token_issuer=False,
        jwt_algorithms=["RS256"],
        jwks_json='{"keys": []}',
    )
    common = {"platform": platform, "database_url": "postgresql://db/consent", "nats_password": key}
    with pytest.raises(ValueError, match="hris_webhook_secrets is required in production"):
        ConsentSettings(**common)
    with pytest.raises(ValueError, match="whsec_"):
        ConsentSettings(**common, hris_webhook_secrets=["not base64!"])
    with pytest.raises(ValueError, match="at least 24"):
        ConsentSettings(**common, hris_webhook_secrets=["whsec_c2hvcnQ="])
    ok = ConsentSettings(**common, hris_webhook_secrets=["whsec_" + "QUFB" * 11])
    assert len(ok.hris_webhook_secrets) == 1
    assert not (tmp_path / "dev-secrets.json").exists()  # nothing generated in production
