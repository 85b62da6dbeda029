"""Nudges: next-due across DST, quiet hours and snooze; sending once; after restart; never after withdrawal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from sqlmodel import Session, select

from services.checkin.nudges.models import NudgeSchedule
from services.checkin.nudges.service import NudgeRule, in_quiet_hours, next_due, run_due
from shared.bus.outbox import OutboxMessage
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.db import make_engine
from tests.checkin.conftest import new_sub

PARIS, NEW_YORK, LONDON = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
MON, TUE, SUN = 0, 1, 6


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestNextDue:
    def test_local_time_is_kept_across_the_spring_dst_change(self):
        rule = NudgeRule(MON, time(9, 0), PARIS)
        first = next_due(rule, utc(2026, 3, 20, 12))
        assert first == utc(2026, 3, 23, 8)  # 09:00 CET
        second = next_due(rule, first)
        assert second == utc(2026, 3, 30, 7)  # 09:00 CEST, after the 29 March change
        assert second.astimezone(PARIS).time() == time(9, 0)

    def test_and_across_the_autumn_change(self):
        rule = NudgeRule(MON, time(9, 0), PARIS)
        assert next_due(rule, utc(2026, 10, 20)) == utc(2026, 10, 26, 8)  # CET again after 25 October

    def test_a_time_skipped_by_spring_forward_moves_forward_by_the_gap(self):
        rule = NudgeRule(SUN, time(2, 30), NEW_YORK)
        due = next_due(rule, utc(2026, 3, 7))
        assert due == utc(2026, 3, 8, 7, 30) and due.astimezone(NEW_YORK).time() == time(3, 30)

    def test_an_ambiguous_time_at_fall_back_is_the_first_one(self):
        rule = NudgeRule(SUN, time(1, 30), NEW_YORK)
        due = next_due(rule, utc(2026, 10, 31))
        assert due == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not 01:30 EST an hour later

    def test_quiet_hours_across_midnight_push_to_their_end(self):
        rule = NudgeRule(TUE, time(23, 0), LONDON, quiet_start=time(22, 0), quiet_end=time(7, 0))
        due = next_due(rule, utc(2026, 6, 1))
        assert due.astimezone(LONDON) == datetime(2026, 6, 3, 7, 0, tzinfo=LONDON)  # Wednesday morning

    def test_a_pushed_occurrence_from_the_previous_week_is_not_skipped(self):
        rule = NudgeRule(SUN, time(23, 0), LONDON, quiet_start=time(22, 0), quiet_end=time(7, 0))
        monday_6am = datetime(2026, 6, 8, 6, 0, tzinfo=LONDON)
        assert next_due(rule, monday_6am).astimezone(LONDON) == datetime(2026, 6, 8, 7, 0, tzinfo=LONDON)

    def test_quiet_hours_within_a_day(self):
        rule = NudgeRule(MON, time(12, 30), PARIS, quiet_start=time(12, 0), quiet_end=time(13, 0))
        assert next_due(rule, utc(2026, 6, 1)).astimezone(PARIS).time() == time(13, 0)

    def test_snooze_waits_for_the_first_regular_reminder_at_or_after_it(self):
        rule = NudgeRule(MON, time(9, 0), ZoneInfo("UTC"), snooze_until=utc(2026, 6, 16))
        assert next_due(rule, utc(2026, 6, 1)) == utc(2026, 6, 22, 9)
        exactly = NudgeRule(MON, time(9, 0), ZoneInfo("UTC"), snooze_until=utc(2026, 6, 15, 9))
        assert next_due(exactly, utc(2026, 6, 1)) == utc(2026, 6, 15, 9)
        past = NudgeRule(MON, time(9, 0), ZoneInfo("UTC"), snooze_until=utc(2026, 1, 1))
        assert next_due(past, utc(2026, 6, 1)) == utc(2026, 6, 1, 9)

    def test_quiet_hours_ending_in_a_skipped_hour_end_after_the_gap(self):
        # New York springs forward 02:00 -> 03:00 on 2025-03-09; a quiet end of 02:00 (whatever
        # its fold, as hypothesis found) is 03:00 EDT that day, never back inside the quiet hours.
        for end in (time(2, 0), time(2, 0, fold=1)):
            rule = NudgeRule(SUN, time(1, 0), NEW_YORK, quiet_start=time(0, 0), quiet_end=end)
            due = next_due(rule, utc(2025, 3, 8, 12))
            assert due == utc(2025, 3, 9, 7) and due.astimezone(NEW_YORK).time() == time(3, 0)

    @settings(max_examples=300, deadline=None)
    @given(
        weekday=st.integers(0, 6),
        at=st.times(),
        zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
        quiet=st.none() | st.tuples(st.times(), st.times()),
        after=st.datetimes(datetime(2025, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
    )
    def test_next_due_is_soon_after_and_never_in_quiet_hours(self, weekday, at, zone, quiet, after):
        tz = ZoneInfo(zone)
        qs, qe = quiet or (None, None)
        rule = NudgeRule(weekday, at.replace(second=0, microsecond=0), tz, qs, qe)
        due = next_due(rule, after)
        assert after < due <= after + timedelta(days=8, hours=2)
        assert not in_quiet_hours(due.astimezone(tz).time(), qs, qe)


def schedule(engine, pseudonym: str, due: datetime, **kw) -> None:
    with Session(engine) as session:
        values = {"weekday": MON, "local_time": time(9), "timezone": "Europe/Paris", "lang": "fr"} | kw
        session.add(NudgeSchedule(pseudonym=pseudonym, next_due=due, updated_at=due, **values))
        session.commit()


def gate_with(*granted: str) -> ConsentGate:
    gate = ConsentGate()
    gate.load({kv_key(p, "checkin"): kv_value("granted", 1, "t") for p in granted})
    return gate


def tick(engine, gate, now: datetime) -> tuple[int, list[OutboxMessage]]:
    with Session(engine) as session:
        sent = run_due(session, gate, now, grace=timedelta(hours=12))
        session.commit()
    with Session(engine) as session:
        return sent, list(session.exec(select(OutboxMessage)))


class TestRunDue:
    def test_a_due_nudge_is_sent_once_and_the_schedule_moves_on(self, engine):
        now = utc(2026, 6, 1, 7, 1)  # Monday 09:01 in Paris
        schedule(engine, "a" * 64, utc(2026, 6, 1, 7, 0))
        sent, outbox = tick(engine, gate_with("a" * 64), now)
        assert sent == 1 and [m.subject for m in outbox] == ["checkin.nudge.due.v1"]
        assert json.loads(outbox[0].payload) | {"event_id": None} == {
            "event_id": None, "type": "checkin.nudge.due.v1", "pseudonym": "a" * 64, "lang": "fr",
            "due_at": "2026-06-01T07:00:00Z",
        }  # fmt: skip
        assert tick(engine, gate_with("a" * 64), now)[0] == 0
        with Session(engine) as session:
            row = session.get(NudgeSchedule, "a" * 64)
            assert row.next_due == utc(2026, 6, 8, 7, 0) and row.last_sent_at == now

    def test_without_consent_or_with_a_blind_gate_nothing_is_sent(self, engine):
        now = utc(2026, 6, 1, 7, 1)
        schedule(engine, "b" * 64, utc(2026, 6, 1, 7, 0))
        assert tick(engine, ConsentGate(), now) == (0, [])  # unsynced: nothing moves either
        with Session(engine) as session:
            assert session.get(NudgeSchedule, "b" * 64).next_due == utc(2026, 6, 1, 7, 0)
        assert tick(engine, gate_with("someone-else"), now) == (0, [])
        with Session(engine) as session:
            assert session.get(NudgeSchedule, "b" * 64).next_due == utc(2026, 6, 8, 7, 0)

    def test_catching_up_in_quiet_hours_waits_for_their_end_and_stale_ones_are_skipped(self, engine):
        late_at_night = utc(2026, 6, 1, 21, 30)  # 23:30 Paris, quiet until 07:00
        schedule(engine, "c" * 64, utc(2026, 6, 1, 19, 0), local_time=time(21), quiet_start=time(22), quiet_end=time(7))
        assert tick(engine, gate_with("c" * 64), late_at_night)[0] == 0
        with Session(engine) as session:
            assert session.get(NudgeSchedule, "c" * 64).next_due == utc(2026, 6, 2, 5, 0)
        schedule(engine, "d" * 64, utc(2026, 5, 30, 7, 0))  # two days late (an outage)
        assert tick(engine, gate_with("d" * 64), utc(2026, 6, 1, 12))[0] == 0


class TestNudgeApi:
    def test_opt_in_read_and_opt_out(self, harness):
        sub = new_sub()
        auth = harness.auth(sub)
        body = {"weekday": "friday", "time": "16:30", "timezone": "Europe/Paris",
                "quiet_hours": {"start": "22:00", "end": "07:00"}, "lang": "fr"}  # fmt: skip
        assert harness.svc.client.put("/v1/me/nudges", json=body, headers=auth).status_code == 403
        harness.grant(sub, "checkin")
        put = harness.svc.client.put("/v1/me/nudges", json=body, headers=auth)
        assert put.status_code == 200, put.text
        due = datetime.fromisoformat(put.json()["next_due"])
        assert due.astimezone(PARIS).weekday() == 4 and due.astimezone(PARIS).time() == time(16, 30)
        assert put.json()["next_due_local"].startswith(due.astimezone(PARIS).date().isoformat())
        assert harness.svc.client.get("/v1/me/nudges", headers=auth).json() == put.json()
        for bad in ({**body, "timezone": "Mars/Olympus"}, {**body, "weekday": "funday"}, {**body, "extra": 1}):
            assert harness.svc.client.put("/v1/me/nudges", json=bad, headers=auth).status_code == 422
        assert harness.svc.client.delete("/v1/me/nudges", headers=auth).status_code == 204
        assert harness.svc.client.get("/v1/me/nudges", headers=auth).status_code == 404


def test_due_nudge_is_produced_after_a_restart_and_never_after_withdrawal(own_harness):
    h = own_harness
    stays, leaves = new_sub(), new_sub()
    body = {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris"}
    for sub in (stays, leaves):
        h.grant(sub, "checkin")
        assert h.svc.client.put("/v1/me/nudges", json=body, headers=h.auth(sub)).status_code == 200
    url = h.svc.settings.database_url
    h.svc.stop()
    # While the service is down: both reminders fall due, and one employee withdraws.
    engine = make_engine(url)
    with Session(engine) as session:
        session.exec(update(NudgeSchedule).values(next_due=datetime.now(UTC) - timedelta(minutes=5)))  # type: ignore[call-overload]
        session.commit()
    h.withdraw(leaves, "checkin", wait=False)
    h.svc.start()
    nudged = h.wait_stream("CHECKIN", "checkin.nudge.due.v1")
    who = [json.loads(d)["pseudonym"] for _, d in nudged]
    assert who == [h.pseudonym(stays)]
    with Session(engine) as session:
        assert session.get(NudgeSchedule, h.pseudonym(leaves)) is None  # deleted by the withdrawal
        row = session.get(NudgeSchedule, h.pseudonym(stays))
        assert row is not None and row.next_due > datetime.now(UTC)
    engine.dispose()
    h.drained()
    assert len(h.stream("CHECKIN", "checkin.nudge.due.v1")) == 1
