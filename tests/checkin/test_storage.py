"""Storage rules on a real database: group commit, key races, trend, withdrawal, retention, release."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.checkin.checkins import repository as repo
from services.checkin.checkins import service
from services.checkin.checkins.models import Checkin, CheckinTrend
from services.checkin.checkins.schemas import CheckinCreate
from services.checkin.checkins.screening import Locale
from services.checkin.checkins.tasks import purge_expired
from services.checkin.checkins.writer import GroupCommitWriter
from services.checkin.clock import iso_week, week_start
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.nudges.models import NudgeSchedule
from services.checkin.subjects import service as subjects
from shared.bus.outbox import OutboxMessage
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.crypto import period_token
from shared.datakeys import DataKeyStore, MasterKeys
from shared.errors import ConsentRequired
from shared.events.checkin import EscalationFlaggedV2
from shared.events.consent import ConsentChange, Purpose
from shared.events.hris import SubjectAssigned, SubjectLeft

PERIOD_KEY = b"p" * 32
ANSWERS = {"who5_1": 3, "who5_2": 3, "who5_3": 3, "who5_4": 3, "who5_5": 3, "mood": 3}


@pytest.fixture
def keys() -> DataKeyStore:
    return DataKeyStore(MasterKeys("k1", {"k1": b"m" * 32}))


def gate(*pseudonyms: str, purposes=("checkin", "aggregate_insights")) -> ConsentGate:
    g = ConsentGate()
    g.load({kv_key(p, purpose): kv_value("granted", 1, "t") for p in pseudonyms for purpose in purposes})
    return g


def prepared(keys, engine, pseudonym: str, answers=ANSWERS, weeks_ago: int = 0, note: str | None = None, consents=None):
    key = keys.get_or_create(engine, pseudonym)
    body = CheckinCreate.model_validate({"answers": answers, "note": note})
    at_request = gate(pseudonym) if consents is None else gate(pseudonym, purposes=consents)
    item = service.prepare_checkin(body, key, at_request, Locale("en", None), PERIOD_KEY, key)
    when = item.created_at - timedelta(weeks=weeks_ago)
    item.write.row["created_at"] = when
    item.write.row["iso_week"] = item.write.week = iso_week(when.date())
    item.write.week_start = week_start(when.date())
    return item


def write_all(engine, items, at_write: ConsentGate | None = None, **kw):
    async def main():
        writer = GroupCommitWriter(engine, **kw)
        # The writer asks consent again per batch: unless a test says otherwise, all consent.
        writer.gate = at_write or gate(*{i.write.key.pseudonym for i in items})
        try:
            return writer, await asyncio.gather(*(writer.write(i.write) for i in items), return_exceptions=True)
        finally:
            await writer.stop()

    return asyncio.run(main())


class TestGroupCommitWriter:
    def test_concurrent_checkins_share_transactions_and_all_commit(self, engine, keys):
        items = [prepared(keys, engine, f"{i:064x}") for i in range(150)]
        writer, results = write_all(engine, items)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert writer.rows == 150 and writer.batches < 150
        with Session(engine) as session:
            assert len(session.exec(select(Checkin)).all()) == 150
            assert len(session.exec(select(CheckinTrend)).all()) == 150

    def test_a_batch_stores_what_a_request_session_stores_and_events_keep_their_requests_trace(self, engine, keys):
        """One write path: ``store_checkin`` in a plain session and in the writer's batch leaves the
        same rows, and each event staged by the writer carries the trace of the request that
        prepared it (the writer thread has no span of its own)."""
        tracer = TracerProvider().get_tracer("test")
        alone, batched = "e" * 64, "c" * 64
        consents = ("checkin", "personalization")
        with tracer.start_as_current_span("request") as span:
            item = prepared(keys, engine, batched, consents=consents)
        trace_id = f"{span.get_span_context().trace_id:032x}"
        write_all(engine, [item], at_write=gate(batched, purposes=consents))
        with Session(engine) as session:
            service.store_checkin(session, prepared(keys, engine, alone, consents=consents).write, 6)
            session.commit()
        with Session(engine) as session:
            assert sorted(r.pseudonym for r in session.exec(select(Checkin))) == [batched, alone]
            assert sorted(t.pseudonym for t in session.exec(select(CheckinTrend))) == [batched, alone]
            rows = session.exec(select(OutboxMessage)).all()
        assert sorted(m.subject for m in rows) == ["checkin.personalization.submitted.v2"] * 2
        traced = [json.loads(m.headers).get("traceparent", "") for m in rows]
        assert sorted(t.split("-")[1] if t else "" for t in traced) == ["", trace_id]

    def test_consent_withdrawn_between_request_and_write_is_honoured_when_the_batch_is_written(self, engine, keys):
        """Issue 11 item 2: the writer asks the gate again. Everything was granted when the
        requests arrived; by the time the batch is written ``checkin`` is gone for one subject, and
        ``escalation`` and ``aggregate_insights`` for the other."""
        gone, kept = "a" * 64, "b" * 64
        everything = ("checkin", "escalation", "aggregate_insights", "personalization")
        low = {**ANSWERS, "who5_1": 0, "who5_2": 0, "who5_3": 0, "who5_4": 0, "who5_5": 0, "mood": 1}
        items = [prepared(keys, engine, p, low, consents=everything) for p in (gone, kept)]
        flagged = [e for e in items[1].write.events if isinstance(e.event, EscalationFlaggedV2)]
        assert flagged and items[1].write.contributions  # produced under consent at request time
        now = gate(kept, purposes=("checkin", "personalization"))
        _, results = write_all(engine, items, at_write=now)
        assert isinstance(results[0], ConsentRequired) and not isinstance(results[1], BaseException)
        assert items[1].write.contributions == []
        with Session(engine) as session:
            assert [r.pseudonym for r in session.exec(select(Checkin))] == [kept]
            subjects = [m.subject for m in session.exec(select(OutboxMessage))]
        assert subjects == ["checkin.personalization.submitted.v2"]  # no flag, nothing for the first

    def test_a_write_under_a_destroyed_key_fails_alone(self, engine, keys):
        doomed, fine = "d" * 64, "f" * 64
        items = [prepared(keys, engine, doomed), prepared(keys, engine, fine)]
        with Session(engine) as session:
            keys.destroy(session, doomed)  # an erasure lands after the key was cached and used
            session.commit()
        _, results = write_all(engine, items)
        assert isinstance(results[0], IntegrityError) and not isinstance(results[1], BaseException)
        with Session(engine) as session:
            assert [r.pseudonym for r in session.exec(select(Checkin))] == [fine]

    def test_trend_is_latest_per_week_oldest_first_and_rebuilt_after_a_delete(self, engine, keys):
        p = "8" * 64
        low = {**ANSWERS, "who5_1": 0}
        items = [prepared(keys, engine, p, low, weeks_ago=2), prepared(keys, engine, p, weeks_ago=1)]
        items += [prepared(keys, engine, p, low), prepared(keys, engine, p)]
        results = [write_all(engine, [item])[1][0] for item in items]
        weeks = [item.write.week for item in items]
        assert results[-1].trend == [(weeks[0], 48, 3), (weeks[1], 60, 3), (weeks[3], 60, 3)]
        with Session(engine) as session:
            repo.forget_trend(session, p)
            session.commit()
        rebuilt = write_all(engine, [prepared(keys, engine, p, low)])[1][0]
        assert rebuilt.trend == [(weeks[0], 48, 3), (weeks[1], 60, 3), (weeks[3], 48, 3)]

    def test_contributions_wait_for_release_and_need_an_org_unit(self, engine, keys):
        with_unit, without = "1" * 64, "2" * 64
        with Session(engine) as session:
            CONTRIBUTIONS.on_subject(
                session, SubjectAssigned(pseudonym=with_unit, org_unit="ou-1", effective_from=date(2020, 1, 1))
            )
            session.commit()
        _, results = write_all(engine, [prepared(keys, engine, with_unit), prepared(keys, engine, without)])
        assert [r.contributed for r in results] == [True, False]
        with Session(engine) as session:
            pending = session.execute(select(CONTRIBUTIONS.tables.pending)).all()
            assert len(pending) == 2 and session.exec(select(OutboxMessage)).all() == []
            assert CONTRIBUTIONS.release(session, 1, lambda: None) == 2  # k=1: no roll-up here
            session.commit()
        with Session(engine) as session:
            released = session.exec(select(OutboxMessage)).all()
            assert {m.subject for m in released} == {"contribution.aggregate.recorded.v1"}
            assert all(m.headers == "{}" for m in released)  # no trace context to link back
            assert {json.loads(m.payload)["metric"] for m in released} == {"who5_index", "mood"}
            assert session.execute(select(CONTRIBUTIONS.tables.pending)).all() == []


class TestWithdrawalAndRetention:
    def consent(self, pseudonym: str, purpose: str, state: str) -> ConsentChange:
        return ConsentChange(pseudonym, Purpose(purpose), state, datetime.now(UTC), 1)  # type: ignore[arg-type]

    def nudge(self, session, pseudonym: str) -> None:
        now = datetime.now(UTC)
        session.add(NudgeSchedule(pseudonym=pseudonym, weekday=0, local_time=time(9), timezone="UTC", lang="en",
                                  next_due=now, updated_at=now))  # fmt: skip

    def test_checkin_withdrawn_deletes_history_and_nudges_lapsed_only_nudges(self, engine, keys):
        withdrawn, lapsed = "3" * 64, "4" * 64
        write_all(engine, [prepared(keys, engine, withdrawn), prepared(keys, engine, lapsed)])
        with Session(engine) as session:
            for p in (withdrawn, lapsed):
                self.nudge(session, p)
            session.commit()
            subjects.on_consent_changed(session, PERIOD_KEY, self.consent(withdrawn, "checkin", "withdrawn"))
            subjects.on_consent_changed(session, PERIOD_KEY, self.consent(lapsed, "checkin", "lapsed"))
            session.commit()
            assert [r.pseudonym for r in session.exec(select(Checkin))] == [lapsed]
            assert session.exec(select(NudgeSchedule)).all() == []
            assert [t.pseudonym for t in session.exec(select(CheckinTrend))] == [lapsed]

    def test_aggregate_withdrawal_drops_unreleased_contributions_and_queues_a_retraction(self, engine, keys):
        p = "a" * 64
        with Session(engine) as session:
            CONTRIBUTIONS.on_subject(
                session, SubjectAssigned(pseudonym=p, org_unit="ou-2", effective_from=date(2020, 1, 1))
            )
            session.commit()
        write_all(engine, [prepared(keys, engine, p)])
        token = period_token(PERIOD_KEY, p, iso_week(datetime.now(UTC).date()))
        with Session(engine) as session:
            subjects.on_consent_changed(session, PERIOD_KEY, self.consent(p, "aggregate_insights", "withdrawn"))
            session.commit()
            pending = session.execute(select(CONTRIBUTIONS.tables.pending)).all()
            assert [json.loads(r.payload)["type"] for r in pending] == ["contribution.aggregate.retracted.v1"]
            assert pending[0].period_token == token

    def test_a_subject_who_left_contributes_nowhere_from_that_date(self, engine):
        p = "5" * 64
        with Session(engine) as session:
            CONTRIBUTIONS.on_subject(
                session, SubjectAssigned(pseudonym=p, org_unit="ou-3", effective_from=date(2020, 1, 1))
            )
            CONTRIBUTIONS.on_subject(session, SubjectLeft(pseudonym=p, effective_from=date(2021, 1, 1)))
            session.commit()
            assert CONTRIBUTIONS.unit_on(session, p, date(2020, 6, 1)) == "ou-3"
            assert CONTRIBUTIONS.unit_on(session, p, date(2021, 6, 1)) is None

    def test_retention_deletes_only_expired_checkins_and_their_trend(self, engine, keys):
        old, recent = "6" * 64, "7" * 64
        write_all(engine, [prepared(keys, engine, old, weeks_ago=30), prepared(keys, engine, recent)])
        with Session(engine) as session:
            assert purge_expired(session, retention_days=180) == 1
            session.commit()
            assert [r.pseudonym for r in session.exec(select(Checkin))] == [recent]
            assert [t.pseudonym for t in session.exec(select(CheckinTrend))] == [recent]
            assert purge_expired(session, 180, now=datetime.now(UTC) + timedelta(days=181)) == 1
            session.commit()
            assert session.exec(select(Checkin)).all() == []
