"""Issue 11 item 2: a withdrawal right after a grant must stop data at once.

The attack, over real HTTP, a real nats-server and the real consent and check-in services: grant,
withdraw, and post a check-in the moment the DELETE has answered 200. Before the fix 7 of 30
check-ins were accepted and one stayed stored; with ``escalation`` withdrawn, flags were still
published. After it: a withdrawal's 200 means every gate denies, and the check-in writer checks
the gate again when it applies a batch.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import nats
from sqlalchemy import func, select
from sqlmodel import Session

from services.checkin.checkins.models import Checkin
from shared.crypto import pseudonym
from tests.servicefixtures import bearer

ROUNDS = 30
WEEKLY_OK = {"who5_1": 4, "who5_2": 4, "who5_3": 3, "who5_4": 4, "who5_5": 4, "mood": 4}
WEEKLY_LOW = {"who5_1": 0, "who5_2": 1, "who5_3": 0, "who5_4": 1, "who5_5": 0, "mood": 1}
FLAGS = "checkin.escalation.flagged.>"  # v2: checkin_ref stays in the clear


def _services(start_service: Any) -> tuple[Any, Any]:
    return start_service("consent"), start_service("checkin")


def _grant(consent: Any, headers: dict[str, str], *purposes: str) -> None:
    for purpose in purposes:
        r = consent.client.put(f"/v1/me/consents/{purpose}", json={"policy_version": 1}, headers=headers)
        assert r.status_code == 200, r.text


def _await_allowed(checkin: Any, subject: str, purpose: str) -> None:
    deadline = time.monotonic() + 10
    while not checkin.runtime.gate.allowed(subject, purpose):
        assert time.monotonic() < deadline, f"check-in's gate never saw the {purpose} grant"
        time.sleep(0.02)


def _stored(checkin: Any, subjects: list[str]) -> int:
    with Session(checkin.runtime.engine) as session:
        stmt = select(func.count()).select_from(Checkin).where(Checkin.pseudonym.in_(subjects))  # type: ignore[attr-defined]
        return int(session.exec(stmt).one()[0])  # type: ignore[call-overload]


def _flags_for(nats_server: Any, refs: set[str]) -> list[str]:
    """Escalation flags on the CHECKIN stream whose check-in is one of ``refs`` (read as ops)."""

    async def read() -> list[str]:
        nc = await nats.connect(**nats_server.connect_kwargs("ops"))
        try:
            js = nc.jetstream()
            sub = await js.subscribe(FLAGS, ordered_consumer=True)
            found: list[str] = []
            try:
                while True:
                    msg = await sub.next_msg(timeout=0.5)
                    ref = json.loads(msg.data)["checkin_ref"].replace("-", "")
                    if ref in refs:
                        found.append(ref)
            except nats.errors.TimeoutError:
                return found
        finally:
            await nc.close()

    return asyncio.run(read())


def test_no_checkin_is_accepted_or_kept_after_a_withdrawal_answered(start_service, token, platform_settings):
    consent, checkin = _services(start_service)
    key = platform_settings.secret("pseudonym_key")
    accepted, subjects = [], []
    for _ in range(ROUNDS):
        sub = f"E-{uuid.uuid4().hex[:12]}"
        headers = bearer(token(sub))
        subjects.append(pseudonym(key, platform_settings.tenant, sub))
        _grant(consent, headers, "checkin")
        r = consent.client.delete("/v1/me/consents/checkin", headers=headers)
        assert r.status_code == 200, r.text
        posted = checkin.client.post("/v1/checkins", json={"answers": WEEKLY_OK}, headers=headers)
        assert posted.status_code in (201, 403, 503), posted.text
        if posted.status_code == 201:
            accepted.append(posted.json()["id"])

    assert accepted == [], f"{len(accepted)} of {ROUNDS} check-ins accepted after the withdrawal's 200"
    time.sleep(0.5)  # room for a late batch, were one still to commit
    assert _stored(checkin, subjects) == 0


def test_no_escalation_flag_is_published_after_a_withdrawal_answered(
    start_service, token, platform_settings, service_nats
):
    consent, checkin = _services(start_service)
    refs: set[str] = set()
    key = platform_settings.secret("pseudonym_key")
    for _ in range(ROUNDS):
        sub = f"E-{uuid.uuid4().hex[:12]}"
        headers = bearer(token(sub))
        _grant(consent, headers, "checkin", "escalation")
        # The check-in itself needs the `checkin` grant to have reached check-in's gate (a grant's
        # 200 promises only that the bucket holds it); the escalation grant's timing is left as is.
        _await_allowed(checkin, pseudonym(key, platform_settings.tenant, sub), "checkin")
        r = consent.client.delete("/v1/me/consents/escalation", headers=headers)
        assert r.status_code == 200, r.text
        # Risk screening fires (low WHO-5), no explicit request to talk: only consent could send it.
        posted = checkin.client.post("/v1/checkins", json={"answers": WEEKLY_LOW}, headers=headers)
        assert posted.status_code == 201, posted.text
        refs.add(posted.json()["id"])

    # Control: the same check-in with escalation granted does publish a flag (the probe can see one).
    sub = f"E-{uuid.uuid4().hex[:12]}"
    headers = bearer(token(sub))
    _grant(consent, headers, "checkin", "escalation")
    _await_allowed(checkin, pseudonym(key, platform_settings.tenant, sub), "escalation")
    control = checkin.client.post("/v1/checkins", json={"answers": WEEKLY_LOW}, headers=headers)
    assert control.status_code == 201, control.text
    control_ref = control.json()["id"]
    deadline = time.monotonic() + 10
    while control_ref not in (found := set(_flags_for(service_nats, refs | {control_ref}))):
        assert time.monotonic() < deadline, "the control flag never reached the stream"
    leaked = found - {control_ref}
    assert not leaked, f"{len(leaked)} of {ROUNDS} flags published after escalation was withdrawn"
