"""Issue 12.5: rotating the master and webhook keys keeps everything readable, end to end.

Real consent, check-in and aggregator services (uvicorn, NATS, their own databases) are run three
times on the same databases: under the first keys; after rotation (new keys current, the old ones
retired but held); and after ``kinwell keys rewrap`` with the old keys dropped. Each time an
employee's export (the directory's employee id, the check-in's note), the release of their contact
details to a counsellor, and a signed webhook delivery verified with the subscription's original
secret must all work. Before the envelope, the directory and the webhook secrets were derived from
the current master key alone: the export and the release failed (``InvalidTag``) and every webhook
secret was unreadable after rotation.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
from sqlmodel import Session

from services.aggregator.notify import ROLLUP_PUBLISHED
from services.aggregator.notify import notify as aggregator_notify
from services.consent.directory.service import release_contact
from shared.keyrotation import rewrap_service
from shared.settings import PlatformSettings
from tests.integrations.conftest import loopback_settings
from tests.integrations.loopback import wait_until
from tests.integrations.test_webhook_services import deliveries, subscribe, verified
from tests.servicefixtures import RunningService, bearer

SERVICES = ("consent", "checkin", "aggregator")
CONTACT = {"preferred_channel": "phone", "phone": "+447700900123", "hours": "09:00-17:00", "timezone": "Europe/London"}
WEEKLY = {"answers": {"who5_1": 3, "who5_2": 3, "who5_3": 2, "who5_4": 3, "who5_5": 3, "mood": 3}, "lang": "en"}


def _key() -> str:
    return secrets.token_urlsafe(32)


def _keys(
    base: PlatformSettings, master: tuple[str, dict[str, str]], webhook: tuple[str, dict[str, str]]
) -> PlatformSettings:
    (master_id, masters), (webhook_id, webhooks) = master, webhook
    return PlatformSettings(
        mode="embedded",
        data_dir=base.data_dir,
        nats_url=base.nats_url,
        master_key=masters[master_id],
        master_key_id=master_id,
        old_master_keys={kid: key for kid, key in masters.items() if kid != master_id},
        webhook_key=webhooks[webhook_id],
        webhook_key_id=webhook_id,
        old_webhook_keys={kid: key for kid, key in webhooks.items() if kid != webhook_id},
    )


def _eventually(call: Any, status: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            return response  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_rotation_then_rewrap_reads_export_contact_and_webhooks_back(
    start_service, make_db_url, platform_settings, token, receiver
):
    urls = {name: make_db_url(name) for name in SERVICES}
    running: dict[str, RunningService] = {}

    def start_all(platform: PlatformSettings) -> None:
        for svc in running.values():
            svc.stop()
        extra: dict[str, dict[str, Any]] = {
            "consent": {"subject_request_timeout_seconds": 0.5},
            "aggregator": {"webhooks": loopback_settings()},
        }
        for name in SERVICES:
            running[name] = start_service(name, database_url=urls[name], platform=platform, **extra.get(name, {}))

    m1, m2, w1, w2 = _key(), _key(), _key(), _key()
    start_all(_keys(platform_settings, ("k1", {"k1": m1}), ("w1", {"w1": w1})))
    sub, note = f"E{uuid.uuid4().hex[:10]}", f"a private note {uuid.uuid4().hex[:6]}"
    auth = bearer(token(sub))
    consent, checkin = running["consent"].client, running["checkin"].client
    versions = {
        c["purpose"]: c["current_policy_version"]
        for c in consent.get("/v1/me/consents", headers=auth).json()["consents"]
    }
    for purpose, body in (("checkin", {}), ("escalation", {"contact": CONTACT})):
        r = consent.put(f"/v1/me/consents/{purpose}", json={"policy_version": versions[purpose], **body}, headers=auth)
        assert r.status_code == 200, r.text
    posted = _eventually(lambda: checkin.post("/v1/checkins", json={**WEEKLY, "note": note}, headers=auth), 201)
    assert posted.status_code == 201, posted.text
    hook = subscribe(running["aggregator"], token, receiver.script("/rot"), ROLLUP_PUBLISHED)

    def reads_everything_back(round_: str) -> None:
        exported = running["consent"].client.get("/v1/me/export", headers=bearer(token(sub))).json()
        assert exported["services"]["consent"]["directory"]["employee_id"] == sub, round_
        assert exported["services"]["consent"]["directory"]["contact"] == CONTACT, round_
        notes = {c["note"] for c in exported["services"]["checkin"]["checkins"]}
        assert note in notes, round_
        app = running["consent"].app
        subject = app.state.consent.pseudonym(sub)
        with Session(running["consent"].runtime.engine) as session:
            assert release_contact(session, subject, "C-1", uuid.uuid4(), ctx=app.state.consent) == CONTACT, round_
            session.commit()
        with Session(running["aggregator"].runtime.engine) as session:
            (delivery_id, *_) = aggregator_notify(
                session, ROLLUP_PUBLISHED, {"rollup_id": round_, "period": "2026-W09"}
            )
            session.commit()
        wait_until(
            lambda: all(d["status"] == "delivered" for d in deliveries(running["aggregator"], token, hook["id"]))
        )
        kept = verified(receiver.hits_on("/rot"), hook["secret"])  # signed with the secret shown at creation
        assert delivery_id in kept, round_

    reads_everything_back("before rotation")

    # Rotation: new keys current, old ones retired but still held.
    rotated = _keys(platform_settings, ("k2", {"k1": m1, "k2": m2}), ("w2", {"w1": w1, "w2": w2}))
    start_all(rotated)
    reads_everything_back("rotated, old keys held")
    # New writes use the new key (a second check-in from a new subject gets a k2-wrapped data key).
    other = bearer(token(f"E{uuid.uuid4().hex[:10]}"))
    granted = running["consent"].client.put(
        "/v1/me/consents/checkin", json={"policy_version": versions["checkin"]}, headers=other
    )
    assert granted.status_code == 200
    assert (
        _eventually(lambda: running["checkin"].client.post("/v1/checkins", json=WEEKLY, headers=other), 201).status_code
        == 201
    )

    counts: dict[str, int] = {}
    for name in SERVICES:
        for svc in running.values():
            svc.stop()  # the operator runs rewrap beside stopped (or running) services
        settings = running[name].settings
        assert set(rewrap_service(name, settings, dry_run=True).values()) != {0}, name
        counts |= rewrap_service(name, settings)
        assert set(rewrap_service(name, settings, dry_run=True).values()) == {0}, name  # nothing left under k1/w1
    assert counts == {
        "consent.directory.employee_id": 1,
        "consent.contact_detail.ciphertext": len(CONTACT),
        "data_key.wrapped": 1,  # the other subject's key was wrapped under k2 already
        "webhook_subscription.secret_ciphertext": 1,
    }, counts

    # The old keys are dropped: everything still reads back.
    start_all(_keys(platform_settings, ("k2", {"k2": m2}), ("w2", {"w2": w2})))
    reads_everything_back("after rewrap, old keys dropped")
