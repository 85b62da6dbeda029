"""Issue 11 item 6: no input to the aggregator describes a group small enough to single anyone out.

The attack: a unit of two people. Before ``shared.contributions`` rolled tiny units up, each of
their check-ins reached the CONTRIBUTION stream naming that unit, so the aggregator (or anyone who
can read its input) held the exact values of a group of two. Now, read as the aggregator reads
its stream (its own NATS user and durable consumer), nothing names the unit: both contribute
under the parent, which has k members; a tiny unit with no such ancestor contributes nothing.
(Run with ``rollup.roll_up`` answering each unit itself: the contributions name "tiny" and
"island", and this test fails.)
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import nats
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import func, select
from sqlmodel import Session

from services.checkin.clock import iso_week
from services.checkin.contributions import CONTRIBUTIONS
from shared.contributions.rollup import roll_up
from shared.crypto import period_token
from shared.events.hris import OrgUnitChanged
from shared.topology import consumer_name
from tests.checkin.conftest import FAST, Harness, new_sub, run
from tests.checkin.test_privacy import org_unit_known

TREE = {"dept": None, "tiny": "dept", "big": "dept", "island": None}


def _as_aggregator(h: Harness) -> list[dict]:  # type: ignore[type-arg]
    async def body() -> list[dict]:  # type: ignore[type-arg]
        nc = await nats.connect(**h.nats.connect_kwargs("aggregator"))
        try:
            js = nc.jetstream(timeout=2)
            durable = consumer_name("aggregator", "contribution.>")
            sub = await js.pull_subscribe("contribution.>", durable=durable, stream="CONTRIBUTION")
            got = []
            while True:
                try:
                    batch = await sub.fetch(256, timeout=0.5)
                except (TimeoutError, NatsTimeout):  # nats-py raises either when caught up
                    return got
                for msg in batch:
                    got.append(json.loads(msg.data))
                    await msg.ack()
        finally:
            await nc.close()

    return run(body())


def _held(h: Harness) -> int:
    with Session(h.svc.runtime.engine) as session:
        return int(session.execute(select(func.count()).select_from(CONTRIBUTIONS.tables.pending)).scalar_one())


def test_a_unit_of_two_reaches_the_aggregator_only_as_its_parent(service_nats, start_service, platform_settings, token):
    h = Harness(service_nats, platform_settings, start_service("checkin", **FAST), token)
    for unit, parent in TREE.items():
        h.publish_as_consent(
            OrgUnitChanged(org_unit=unit, parent=parent, state="active", effective_from=date(2020, 1, 1))
        )
    h.staff("big")  # k members: dept has k + 3
    pair, alone = [new_sub(), new_sub()], new_sub()
    for sub, unit in ((pair[0], "tiny"), (pair[1], "tiny"), (alone, "island")):
        h.grant(sub, "checkin", "aggregate_insights")
        h.assign(sub, unit, date(2020, 1, 1))
    for sub in (*pair, alone):
        h.wait(lambda sub=sub: org_unit_known(h, sub, date.today()), "org unit")
        assert h.checkin(sub).status_code == 201
    week = iso_week(datetime.now(UTC).date())
    token_of = {sub: period_token(h.platform.secret("period_key"), h.pseudonym(sub), week) for sub in (*pair, alone)}
    h.wait(lambda: _held(h) == 0, "contributions released")

    seen = _as_aggregator(h)
    assert {c["period_token"] for c in seen} == {token_of[s] for s in pair}  # the island's never left
    assert not [c for c in seen if c["org_unit"] in ("tiny", "island")]
    assert sorted((c["metric"], c["org_unit"]) for c in seen) == sorted([("mood", "dept"), ("who5_index", "dept")] * 2)


class TestRollUp:
    K = 5

    def test_a_unit_with_k_members_is_itself(self):
        assert roll_up({"team": 5}, {"team": "dept"}, self.K) == {"team": "team"}

    def test_a_tiny_unit_goes_to_the_nearest_ancestor_counting_its_sub_units(self):
        parents = {"a1": "a", "a": "dept", "b": "dept", "dept": None}
        # a has 1 + 2 = 3 (< 5); dept has 1 + 2 + 4 = 7.
        assert roll_up({"a1": 2, "a": 1, "b": 4}, parents, self.K) == {"a1": "dept", "a": "dept", "b": "dept"}

    def test_without_an_ancestor_of_k_it_contributes_nothing(self):
        assert roll_up({"x": 2, "lonely": 1}, {"x": "root", "root": None}, self.K) == {"x": None, "lonely": None}

    def test_a_cycle_in_the_tree_ends_the_walk(self):
        assert roll_up({"a": 1, "b": 1}, {"a": "b", "b": "a"}, self.K) == {"a": None, "b": None}
