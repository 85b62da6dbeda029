"""Work-pattern signals: ``POST /v1/signals`` on the real service, real NATS, real database.

Consent decides at the door (dropped and counted, never stored); stored days are pseudonymous and
leave only as weekly de-identified contributions, read here as the aggregator's NATS user.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import select, text
from sqlmodel import Session

from services.checkin.clock import iso_week
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.signals.models import SignalDay
from services.checkin.signals.service import Pseudonymiser
from shared.crypto import period_token, pseudonym
from shared.events.subject import SubjectDataReply, SubjectDataRequest
from shared.topology import consumer_name, export_subject
from tests.checkin.conftest import CONTRIBUTION_FIELDS, FAST, Harness, deidentified, new_sub, run

TODAY = datetime.now(UTC).date()
MONDAY = TODAY - timedelta(days=TODAY.weekday())


def record(sub: str, day: date = TODAY, **values: Any) -> dict[str, Any]:
    base = {
        "employee_id": sub,
        "date": day.isoformat(),
        "messages_sent": 30,
        "messages_after_hours": 3,
        "meeting_hours": 2.5,
        "focus_hours": 3.0,
        "worked": True,
    }
    return base | values


def post(h: Harness, records: list[dict[str, Any]], role: str = "integration", **kw: Any) -> Any:
    headers = h.auth("hr-connector", role)
    if "content" in kw:
        headers["Content-Type"] = kw.pop("content_type", "application/json")
        return h.svc.client.post("/v1/signals", headers=headers, **kw)
    return h.svc.client.post("/v1/signals", json={"records": records}, headers=headers)


def stored(h: Harness, sub: str | None = None) -> list[Any]:
    table = SignalDay.__table__  # type: ignore[attr-defined]
    stmt = select(table)
    if sub is not None:
        stmt = stmt.where(table.c.pseudonym == h.pseudonym(sub))
    with Session(h.svc.runtime.engine) as session:
        return list(session.exec(stmt.order_by(table.c.day)))  # type: ignore[call-overload]


def grant_signals(h: Harness, *subs: str) -> None:
    for sub in subs:
        h.grant(sub, "work_patterns")


class TestConsentAtTheDoor:
    def test_only_consented_records_are_stored_the_rest_only_counted(self, harness):
        yes1, yes2, no, other_purpose = (new_sub() for _ in range(4))
        grant_signals(harness, yes1, yes2)
        harness.grant(other_purpose, "checkin", "aggregate_insights")
        # Yesterday is always open: last week closes only 36 h after it ends.
        records = [record(s) for s in (yes1, no, yes2, other_purpose)] + [record(yes1, TODAY - timedelta(days=1))]
        r = post(harness, records)
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 3, "dropped_no_consent": 2, "dropped_closed_week": 0}
        assert {row.pseudonym for row in stored(harness)} >= {harness.pseudonym(yes1), harness.pseudonym(yes2)}
        assert stored(harness, no) == [] and stored(harness, other_purpose) == []
        row = stored(harness, yes2)[0]
        values = (row.messages_sent, row.messages_after_hours, row.meeting_hours, row.focus_hours, row.worked)
        assert row.day == TODAY and values == (30, 3, 2.5, 3.0, True)
        # No employee id anywhere in the table: only pseudonyms.
        dump = json.dumps([list(map(str, row)) for row in stored(harness)])
        assert not any(sub in dump for sub in (yes1, yes2, no, other_purpose))

    def test_a_resent_employee_day_replaces_the_stored_one(self, harness):
        sub = new_sub()
        grant_signals(harness, sub)
        assert post(harness, [record(sub, meeting_hours=1.0)]).json()["accepted"] == 1
        again = post(harness, [record(sub, meeting_hours=6.5, worked=False)])
        assert again.json()["accepted"] == 1
        rows = stored(harness, sub)
        assert [(r.day, r.meeting_hours, r.worked) for r in rows] == [(TODAY, 6.5, False)]

    def test_the_same_batch_posted_concurrently_is_stored_once(self, harness):
        # Concurrent requests are written in one group; the same employee-days in two of them
        # must still end as one row each.
        subs = [new_sub() for _ in range(20)]
        grant_signals(harness, *subs)
        records = [record(s, messages_sent=n + 1, messages_after_hours=0) for n, s in enumerate(subs)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(harness, records).json(), range(16)))
        assert all(a == {"accepted": 20, "dropped_no_consent": 0, "dropped_closed_week": 0} for a in answers)
        rows = [row for s in subs for row in stored(harness, s)]
        assert sorted(r.messages_sent for r in rows) == list(range(1, 21))

    def test_a_closed_week_is_dropped_and_counted(self, harness):
        sub = new_sub()
        grant_signals(harness, sub)
        r = post(harness, [record(sub, MONDAY - timedelta(days=14)), record(sub)])
        assert r.json() == {"accepted": 1, "dropped_no_consent": 0, "dropped_closed_week": 1}
        assert [row.day for row in stored(harness, sub)] == [TODAY]

    def test_the_pseudonym_is_the_platforms(self):
        for key in (b"k" * 32, b"x" * 100):  # HMAC hashes keys longer than a block first
            fast = Pseudonymiser(key, "acme")
            for employee in ("E1", "émile.dupont@example.com", "x" * 256):
                assert fast(employee) == pseudonym(key, "acme", employee)


class TestWithdrawalErasureExport:
    def test_withdrawal_deletes_stored_days_and_drops_new_records(self, harness):
        sub, kept = new_sub(), new_sub()
        grant_signals(harness, sub, kept)
        assert post(harness, [record(sub), record(kept)]).json()["accepted"] == 2
        harness.withdraw(sub, "work_patterns")
        harness.wait(lambda: stored(harness, sub) == [], "signal days deleted")
        r = post(harness, [record(sub, messages_sent=99)])
        assert r.json() == {"accepted": 0, "dropped_no_consent": 1, "dropped_closed_week": 0}
        assert stored(harness, sub) == [] and len(stored(harness, kept)) == 1

    def test_the_gates_revocation_alone_deletes_them(self, harness):
        # No consent.changed event at all (event=False): the gate's on_revoked listener acts.
        sub = new_sub()
        grant_signals(harness, sub)
        assert post(harness, [record(sub)]).json()["accepted"] == 1
        harness.withdraw(sub, "work_patterns", event=False)
        harness.wait(lambda: stored(harness, sub) == [], "signal days deleted by the gate listener")

    def test_erasure_deletes_signal_days(self, harness):
        sub, kept = new_sub(), new_sub()
        grant_signals(harness, sub, kept)
        assert post(harness, [record(sub), record(kept)]).json()["accepted"] == 2
        request_id = harness.request_erasure(sub)
        harness.wait(
            lambda: any(str(request_id) in d.decode() for _, d in harness.stream("CHECKIN", "checkin.erasure"))
        )
        assert stored(harness, sub) == [] and len(stored(harness, kept)) == 1

    def test_export_lists_the_stored_days(self, harness):
        sub = new_sub()
        grant_signals(harness, sub)
        assert post(harness, [record(sub, messages_sent=12, messages_after_hours=5)]).json()["accepted"] == 1

        async def ask() -> dict:
            nc = await nats.connect(**harness.nats.connect_kwargs("consent"))
            try:
                request = SubjectDataRequest(pseudonym=harness.pseudonym(sub)).model_dump_json().encode()
                msg = await nc.request(export_subject("checkin"), request, timeout=5)
                return SubjectDataReply.model_validate_json(msg.data).data
            finally:
                await nc.close()

        days = run(ask())["work_pattern_signals"]
        assert days == [
            {
                "date": TODAY.isoformat(),
                "messages_sent": 12,
                "messages_after_hours": 5,
                "meeting_hours": 2.5,
                "focus_hours": 3.0,
                "worked": True,
            }
        ]


DROP = object()
BAD_RECORDS = {
    "unknown field": {"subject_line": "Re: layoffs"},
    "missing field": {"worked": DROP},
    "negative": {"messages_sent": -1},
    "too many messages": {"messages_sent": 100_001, "messages_after_hours": 0},
    "string for a number": {"meeting_hours": "2"},
    "true for a count": {"messages_sent": True},
    "float for a count": {"messages_sent": 3.0},
    "number for a flag": {"worked": 1},
    "hours over a day": {"meeting_hours": 25},
    "meetings and focus over a day": {"meeting_hours": 14, "focus_hours": 11},
    "more after hours than sent": {"messages_sent": 2, "messages_after_hours": 3},
    "future date": {"date": (TODAY + timedelta(days=3)).isoformat()},
    "datetime for a date": {"date": f"{TODAY.isoformat()}T09:00:00"},
    "empty employee id": {"employee_id": ""},
    "control character in id": {"employee_id": "E1\n"},
    "id too long": {"employee_id": "E" * 257},
}


class TestBadInput:
    @pytest.mark.parametrize("change", BAD_RECORDS.values(), ids=list(BAD_RECORDS))
    def test_an_invalid_record_rejects_the_whole_batch(self, harness, change):
        good, bad = new_sub(), new_sub()
        grant_signals(harness, good, bad)
        broken = {k: v for k, v in (record(bad) | change).items() if v is not DROP}
        r = post(harness, [record(good), broken])
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert good not in r.text and bad not in r.text and "layoffs" not in r.text
        assert stored(harness, good) == [] and stored(harness, bad) == []

    def test_the_same_employee_day_twice_in_a_batch_is_422(self, harness):
        sub = new_sub()
        grant_signals(harness, sub)
        r = post(harness, [record(sub), record(sub, meeting_hours=1)])
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "records", "1", "date"]
        assert stored(harness, sub) == []

    @pytest.mark.parametrize(
        ("content", "status"),
        [
            (b'{"records": [', 400),
            (b"[]", 422),
            (b'{"records": []}', 422),
            (b'{"records": [], "extra": 1}', 422),
            (b"null", 422),
        ],
    )
    def test_malformed_bodies(self, harness, content, status):
        r = post(harness, [], content=content)
        assert r.status_code == status and r.headers["content-type"].startswith("application/problem+json")

    def test_not_json_content_type_is_422(self, harness):
        r = post(harness, [], content=json.dumps({"records": [record("E1")]}).encode(), content_type="text/plain")
        assert r.status_code == 422

    def test_batches_over_1000_records_are_413_and_1000_is_fine(self, harness):
        subs = [f"{new_sub()}-{i}" for i in range(1001)]
        grant_signals(harness, subs[0])
        too_many = post(harness, [record(s) for s in subs])
        assert too_many.status_code == 413 and too_many.json()["type"].endswith("/batch-too-large")
        assert stored(harness, subs[0]) == []
        ok = post(harness, [record(s) for s in subs[:1000]])
        assert ok.status_code == 200 and ok.json() == {
            "accepted": 1,
            "dropped_no_consent": 999,
            "dropped_closed_week": 0,
        }

    def test_a_body_over_the_routes_limit_is_413_and_other_routes_keep_64_kib(self, harness):
        padding = json.dumps({"records": [record("E1")]}).encode()[:-2] + b" " * (600 * 1024) + b"]}"
        assert post(harness, [], content=padding).status_code == 413
        # 100 KiB passes the signals route's limit but not the service's 64 KiB elsewhere.
        mid = json.dumps({"records": [record(f"E{i}") for i in range(1)]}).encode()[:-2] + b" " * 100_000 + b"]}"
        assert post(harness, [], content=mid).status_code == 200
        checkin = harness.svc.client.post(
            "/v1/checkins", content=mid, headers={**harness.auth("E1"), "Content-Type": "application/json"}
        )
        assert checkin.status_code == 413

    @pytest.mark.parametrize("role", ["employee", "admin", "hr_analyst", "counsellor"])
    def test_only_an_integration_may_post(self, harness, role):
        sub = new_sub()
        grant_signals(harness, sub)
        r = post(harness, [record(sub)], role=role)
        assert r.status_code == 403 and stored(harness, sub) == []

    def test_the_route_and_its_body_are_in_the_openapi_document(self, harness):
        doc = harness.svc.client.get("/openapi.json").json()
        route = doc["paths"]["/v1/signals"]["post"]
        assert {"200", "401", "403", "413", "422", "503"} <= set(route["responses"])
        record_schema = doc["components"]["schemas"]["SignalRecord"]
        assert record_schema["additionalProperties"] is False and "employee_id" in record_schema["required"]

    def test_no_token_is_401(self, harness):
        r = harness.svc.client.post("/v1/signals", json={"records": [record("E1")]})
        assert r.status_code == 401


# --- weekly contributions ------------------------------------------------------------------------

LAST_MONDAY = MONDAY - timedelta(days=7)
LAST_WEEK = iso_week(LAST_MONDAY)


def _last_week(sub: str, worked_days: int, *, sent: int, after: int, meeting: float, focus: float) -> list[dict]:
    return [
        record(
            sub,
            LAST_MONDAY + timedelta(days=n),
            messages_sent=sent,
            messages_after_hours=after,
            meeting_hours=meeting if n < worked_days else 0.0,
            focus_hours=focus if n < worked_days else 0.0,
            worked=n < worked_days,
        )
        for n in range(7)
    ]


def as_aggregator(h: Harness, want: int, timeout: float = 20.0) -> list[Any]:
    """Contributions not read before, with the aggregator's NATS credentials (its durable
    consumer), until ``want`` have come or ``timeout`` seconds have passed."""

    async def body() -> list[Any]:
        nc = await nats.connect(**h.nats.connect_kwargs("aggregator"))
        try:
            js = nc.jetstream(timeout=2)
            sub = await js.pull_subscribe(
                "contribution.>", durable=consumer_name("aggregator", "contribution.>"), stream="CONTRIBUTION"
            )
            got: list[Any] = []
            deadline = datetime.now(UTC) + timedelta(seconds=timeout)
            while len(got) < want and datetime.now(UTC) < deadline:
                try:
                    batch = await sub.fetch(256, timeout=0.5)
                except (NatsTimeout, TimeoutError):  # nats.py raises either, depending on where it waited
                    continue
                for msg in batch:
                    got.append(msg)
                    await msg.ack()
            return got
        finally:
            await nc.close()

    return run(body())


def org_unit(h: Harness, sub: str, on: date) -> str | None:
    with Session(h.svc.runtime.engine) as session:
        return CONTRIBUTIONS.unit_on(session, h.pseudonym(sub), on)


@pytest.fixture
def weekly(service_nats, start_service, platform_settings, token) -> Harness:
    """A service of the test's own whose last ISO week is still open (closing needs a restart)."""
    return Harness(service_nats, platform_settings, start_service("checkin", **FAST, signals_close_hours=168), token)


class TestWeeklyContributions:
    def test_a_closed_week_leaves_only_as_deidentified_contributions(self, weekly):
        h = weekly
        a, b, no_unit, no_consent = (new_sub() for _ in range(4))
        grant_signals(h, a, b, no_unit)
        h.staff("team-signal")
        for sub in (a, b):
            h.assign(sub, "team-signal", date(2020, 1, 1))
        a_days = _last_week(a, 5, sent=20, after=1, meeting=2.0, focus=4.0)
        b_days = _last_week(b, 3, sent=10, after=0, meeting=1.0, focus=1.5)
        others = _last_week(no_unit, 5, sent=1, after=1, meeting=1, focus=1) + [record(no_consent, LAST_MONDAY)]
        r = post(h, a_days + b_days + others + [record(a, TODAY, meeting_hours=9.0)])
        assert r.json() == {"accepted": 22, "dropped_no_consent": 1, "dropped_closed_week": 0}
        # Re-sending a day replaces it: Monday now had 5 h of meetings and more messages.
        assert post(h, [record(a, LAST_MONDAY, messages_sent=40, messages_after_hours=4, meeting_hours=5.0,
                                focus_hours=0.0)]).json()["accepted"] == 1  # fmt: skip
        h.wait(lambda: all(h.svc.runtime.gate.allowed(h.pseudonym(s), "work_patterns") for s in (a, b)))
        for sub in (a, b):
            h.wait(lambda sub=sub: org_unit(h, sub, LAST_MONDAY), "org unit")
        assert as_aggregator(h, 1, timeout=1.5) == []  # nothing leaves while the week is open

        # The week closes: restart with no grace (the same database; closing survives restarts).
        h.svc.settings = h.svc.settings.model_copy(update={"signals_close_hours": 0.0})
        h.svc.restart()
        msgs = as_aggregator(h, 8)
        key = h.platform.secret("period_key")
        token = {period_token(key, h.pseudonym(s), LAST_WEEK): s for s in (a, b, no_unit, no_consent)}
        got: dict[str, dict[str, float]] = {}
        forbidden = [a, b, no_unit, no_consent, *(h.pseudonym(s) for s in (a, b, no_unit, no_consent))]
        forbidden += [(LAST_MONDAY + timedelta(days=n)).isoformat() for n in range(7)] + [TODAY.isoformat()]
        for msg in msgs:
            body = deidentified(msg, forbidden)
            assert set(body) == CONTRIBUTION_FIELDS
            assert body["iso_week"] == LAST_WEEK and body["org_unit"] == "team-signal"
            got.setdefault(token[body["period_token"]], {})[body["metric"]] = body["value"]
        # a: Mon 5 h meetings / 0 focus, Tue-Fri 2 h / 4 h; 40+4x20+2x20 messages, 4+4x1+2x1 after hours.
        assert got == {
            a: {"days_worked": 5, "meeting_hours_per_day": 2.6, "focus_hours_per_day": 3.2,
                "after_hours_message_share": 6.0},
            b: {"days_worked": 3, "meeting_hours_per_day": 1.0, "focus_hours_per_day": 1.5,
                "after_hours_message_share": 0.0},
        }  # fmt: skip
        # The closed week's days are gone, this week's stay; the week is recorded as closed.
        assert [(r.day, r.meeting_hours) for r in stored(h, a)] == [(TODAY, 9.0)]
        assert all(r.day >= MONDAY for r in stored(h))
        with Session(h.svc.runtime.engine) as session:
            closed = [row[0] for row in session.exec(text("SELECT iso_week FROM signal_week"))]  # type: ignore[call-overload]
        assert closed == [LAST_WEEK]
        # A late record for the closed week is dropped and counted, and nothing more leaves.
        late = post(h, [record(a, LAST_MONDAY + timedelta(days=2))])
        assert late.json() == {"accepted": 0, "dropped_no_consent": 0, "dropped_closed_week": 1}
        h.drained()
        assert as_aggregator(h, 1, timeout=1.5) == []
