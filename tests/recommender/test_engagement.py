"""Issue 16: engagement counters (views, completions, EAP referrals) reach the aggregator as
de-identified contributions and come out in ``/v1/program-metrics``; nothing without
``aggregate_insights``. Real NATS, the real recommender and aggregator, their own databases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import nats
from sqlalchemy import func
from sqlmodel import Session, select

from services.aggregator.contributions.models import Cell
from services.aggregator.releases import tasks
from shared.crypto import period_token, pseudonym
from shared.events.hris import OrgUnitChanged, SubjectAssigned
from tests.aggregator.conftest import QUIET
from tests.checkin.conftest import deidentified, run
from tests.escalation.conftest import new_sub, publish_as, put_consents
from tests.integrations.loopback import wait_until
from tests.servicefixtures import bearer

RESOURCE, EAP = "stress-box-breathing", "eap-us"


def _stream(server: Any, subjects: str) -> list[Any]:
    """Every stored message on ``subjects`` (read as ops, for inspection)."""

    async def body() -> list[Any]:
        nc = await nats.connect(**server.connect_kwargs("ops"))
        try:
            sub = await nc.jetstream().subscribe(subjects, ordered_consumer=True)
            out = []
            while True:
                try:
                    out.append(await sub.next_msg(timeout=0.5))
                except Exception:  # noqa: BLE001 - caught up
                    return out
        finally:
            await nc.close()

    return run(body())


def _counted(aggregator, metric: str) -> int:  # type: ignore[no-untyped-def]
    with Session(aggregator.runtime.engine) as session:
        total = session.exec(select(func.sum(Cell.count)).where(Cell.metric == metric)).one()
    return int(total or 0)


def test_views_completions_and_eap_referrals_reach_program_metrics(
    service_nats, start_service, platform_settings, token
):
    recommender = start_service("recommender", contribution_release_seconds=0.2)
    aggregator = start_service(
        "aggregator", release=QUIET, release_check_seconds=3600, clock_offset_days=14, grace_hours=0
    )
    pseudonym_of = {}
    consenting = [new_sub() for _ in range(6)]
    refuser = new_sub()  # personalization only: their interactions are kept, never counted
    for sub in (*consenting, refuser):
        pseudonym_of[sub] = pseudonym(platform_settings.secret("pseudonym_key"), platform_settings.tenant, sub)
    put_consents(service_nats, {pseudonym_of[s]: "granted" for s in consenting}, purpose="aggregate_insights")
    put_consents(service_nats, {pseudonym_of[s]: "granted" for s in (*consenting, refuser)}, purpose="personalization")
    since = date(2020, 1, 1)
    publish_as(
        service_nats,
        "consent",
        OrgUnitChanged(org_unit="org", parent=None, state="active", effective_from=since),
        *(SubjectAssigned(pseudonym=pseudonym_of[s], org_unit="org", effective_from=since) for s in pseudonym_of),
    )
    gate = recommender.runtime.gate
    wait_until(lambda: all(gate.allowed(pseudonym_of[s], "personalization") for s in pseudonym_of))
    wait_until(lambda: all(gate.allowed(pseudonym_of[s], "aggregate_insights") for s in consenting))
    hris = next(c for c in recommender.runtime.consumers if "hris_subject" in c.name)
    wait_until(lambda: hris.applied >= len(pseudonym_of))

    def interact(sub: str, resource: str, kind: str) -> None:
        body = {"resource_id": resource, "kind": kind}
        r = recommender.client.post("/v1/me/interactions", json=body, headers=bearer(token(sub)))
        assert r.status_code == 202 and r.json()["recorded"] is True, r.text

    for sub in (*consenting, refuser):
        interact(sub, RESOURCE, "viewed")
        interact(sub, RESOURCE, "viewed")  # a second view the same week counts once
        interact(sub, RESOURCE, "completed")
        interact(sub, EAP, "viewed")
        interact(sub, RESOURCE, "helpful")  # counts nothing
    n = len(consenting)
    for metric in ("resource_viewed", "resource_completed", "eap_referred"):
        wait_until(lambda metric=metric: _counted(aggregator, metric) == n, timeout=20)

    # On the aggregator's input: only the consenting six, under their week's tokens, de-identified.
    week = "{}-W{:02d}".format(*datetime.now(UTC).isocalendar()[:2])
    key = platform_settings.secret("period_key")
    tokens = {period_token(key, pseudonym_of[s], week) for s in consenting}
    msgs = [m for m in _stream(service_nats, "contribution.>") if json.loads(m.data)["source"] == "recommender"]
    bodies = [deidentified(m, [*pseudonym_of, *pseudonym_of.values(), RESOURCE, EAP]) for m in msgs]
    assert {b["period_token"] for b in bodies} == tokens
    assert sorted((b["metric"], b["value"]) for b in bodies) == sorted(
        [("resource_viewed", 1.0), ("resource_completed", 1.0), ("eap_referred", 1.0)] * n
    )

    assert tasks.release_job(aggregator.runtime, aggregator.settings, aggregator.app.state.clock) == 1
    r = aggregator.client.get("/v1/program-metrics", headers=bearer(token("hr-1", "hr_analyst")))
    assert r.status_code == 200, r.text
    cells = {c["metric"]: c for c in r.json()["metrics"] if c["org_unit"] == "org"}
    for metric in ("resource_viewed", "resource_completed", "eap_referred"):
        assert cells[metric]["status"] == "released", cells[metric]
        count = cells[metric]["count"]
        assert count["interval_95"][0] <= n <= count["interval_95"][1]
