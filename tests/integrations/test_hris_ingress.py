"""Inbound HRIS webhooks over real HTTP: Standard Webhooks verification, rotation, problem+json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.errors import PayloadTooLarge, Unauthorized
from shared.events.hris import OrgUnitChanged, SubjectAssigned, SubjectLeft
from shared.hris import verify_hris_webhook
from shared.webhooks import generate_secret
from tests.integrations.hris_helpers import Ingress, ingress_app, post_signed, pseudonym_of, signed_headers
from tests.integrations.loopback import Served

SAMPLES = Path(__file__).parent / "samples"
PROBLEM = "application/problem+json"
PATH = "/v1/hris/webhooks/kinwell"

BATCH = {
    "events": [
        {"type": "org_unit.created", "org_unit": {"org_unit_id": "eng", "parent_id": "acme", "name": "Engineering"}},
        {
            "type": "employee.created",
            "employee": {"employee_id": "E-1001", "org_unit": "eng", "country": "DE", "effective_from": "2026-01-05"},
        },
        {"type": "employee.left", "employee_id": "E-0999", "left_on": "2026-01-31"},
    ]
}


@pytest.fixture
def hris(engine):
    ingress = Ingress(secrets=[generate_secret()])
    served = Served(ingress_app(engine, ingress))
    client = httpx.Client(base_url=served.url, timeout=10)
    yield ingress, client
    client.close()
    served.stop()


def test_a_correctly_signed_batch_is_accepted_and_minimised(hris):
    ingress, client = hris
    r = post_signed(client, PATH, BATCH, ingress.secrets[0])
    assert r.status_code == 200 and r.json()["events"] == 3
    by_type = {type(e): e for e in ingress.published}
    assert by_type[OrgUnitChanged].org_unit == "eng" and by_type[OrgUnitChanged].parent == "acme"
    assert by_type[SubjectAssigned].pseudonym == pseudonym_of("E-1001")
    assert str(by_type[SubjectAssigned].effective_from) == "2026-01-05"
    assert by_type[SubjectLeft].pseudonym == pseudonym_of("E-0999")
    wire = json.dumps([e.model_dump(mode="json") for e in ingress.published])
    assert "E-1001" not in wire and "E-0999" not in wire and "Engineering" not in wire


def test_the_webhook_id_is_the_idempotency_key(hris):
    ingress, client = hris
    body = json.dumps(BATCH).encode()
    headers = signed_headers(ingress.secrets[0], body, msg_id="msg_hris_42")
    assert client.post(PATH, content=body, headers=headers).status_code == 200
    assert client.post(PATH, content=body, headers=headers).status_code == 200  # a retry
    assert len(ingress.published) == 3


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "edited-body", "stale", "future", "missing", "malformed-sig", "bad-timestamp", "bad-id"],
)
def test_bad_signatures_and_stale_timestamps_are_401_problem_json(hris, tamper):
    ingress, client = hris
    body = json.dumps(BATCH).encode()
    secret = ingress.secrets[0]
    headers = signed_headers(secret, body)
    if tamper == "wrong-secret":
        headers = signed_headers(generate_secret(), body)
    elif tamper == "edited-body":
        body = body.replace(b"E-1001", b"E-1002")
    elif tamper == "stale":
        headers = signed_headers(secret, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "future":
        headers = signed_headers(secret, body, at=datetime.now(UTC) + timedelta(minutes=6))
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "malformed-sig":
        headers["webhook-signature"] = "v1 no-comma,,, v1,@@@"
    elif tamper == "bad-timestamp":
        headers["webhook-timestamp"] = "yesterday"
    elif tamper == "bad-id":
        headers["webhook-id"] = "msg id with spaces"
    r = client.post(PATH, content=body, headers=headers)
    assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/invalid-webhook-signature")
    assert ingress.published == []


def test_secret_rotation_accepts_any_configured_secret(hris):
    ingress, client = hris
    old, new = ingress.secrets[0], generate_secret()
    ingress.secrets[:] = [new, old]  # rotation window: both valid
    assert post_signed(client, PATH, BATCH, old).status_code == 200
    assert post_signed(client, PATH, BATCH, new).status_code == 200
    ingress.secrets[:] = [new]  # the old one retired
    assert post_signed(client, PATH, BATCH, old).status_code == 401
    ingress.secrets[:] = []  # nothing configured: fail closed
    assert post_signed(client, PATH, BATCH, new).status_code == 401


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"type": "employee.promoted", "employee_id": "E-1"}, 422, "unknown-event-type"),
        ({"events": [{"type": "salary.changed"}]}, 422, "validation-error"),
        (
            {"type": "employee.created", "employee": {"employee_id": "E-1", "name": "Bryony Quillfeather"}},
            422,
            "validation-error",
        ),
        (
            {
                "type": "trigger.announced",
                "trigger_id": "t1",
                "kind": "party",
                "org_units": ["a"],
                "starts_on": "2026-01-01",
            },
            422,
            "validation-error",
        ),
        (b"{not json", 400, "malformed-json"),
    ],
)
def test_unknown_types_extra_fields_and_bad_json_are_4xx_problem_json(hris, payload, status, code):
    ingress, client = hris
    r = post_signed(client, PATH, payload, ingress.secrets[0])
    assert r.status_code == status and r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith("/" + code)
    assert "Quillfeather" not in r.text  # errors never echo the input
    assert ingress.published == []


def test_oversized_bodies_are_413_problem_json(hris):
    ingress, client = hris
    big = {"events": [{"type": "employee.left", "employee_id": f"E-{n:06d}"} for n in range(1000)]}
    big_body = json.dumps(big).encode() + b" " * 40_000
    r = post_signed(client, PATH, big_body, ingress.secrets[0])
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    with pytest.raises(PayloadTooLarge):
        verify_hris_webhook(signed_headers(ingress.secrets[0], b"{}"), b"x" * 11, ingress.secrets, max_bytes=10)


def test_unknown_vendor_is_404(hris):
    ingress, client = hris
    r = post_signed(client, "/v1/hris/webhooks/workday", BATCH, ingress.secrets[0])
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("sample", ["bamboohr_field_based.json", "merge_employee_changed.json"])
def test_vendor_payloads_are_accepted_over_http(hris, sample):
    ingress, client = hris
    ingress.consented.add(pseudonym_of("40123"))
    vendor = sample.split("_", 1)[0]
    r = post_signed(client, f"/v1/hris/webhooks/{vendor}", (SAMPLES / sample).read_bytes(), ingress.secrets[0])
    assert r.status_code == 200 and r.json()["events"] >= 1
    assert ingress.published


def test_verify_returns_the_webhook_id_and_raises_401_otherwise():
    secret = generate_secret()
    headers = signed_headers(secret, b'{"a":1}', msg_id="msg_abc")
    assert verify_hris_webhook(headers, b'{"a":1}', [generate_secret(), secret]) == "msg_abc"
    with pytest.raises(Unauthorized):
        verify_hris_webhook(headers, b'{"a":2}', [secret])
    with pytest.raises(Unauthorized):
        verify_hris_webhook(headers, b'{"a":1}', ["not-a-valid-secret-!!"])
