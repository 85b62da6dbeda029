"""Privacy invariants of the check-in flows, on a real nats-server with the committed permissions."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout
from pydantic import TypeAdapter
from sqlmodel import Session, SQLModel, select

from services.checkin.checkins.models import Checkin, CheckinTrend
from services.checkin.clock import iso_week
from services.checkin.contributions import CONTRIBUTIONS
from services.checkin.nudges.models import NudgeSchedule
from shared.bus import Bus, Consumer
from shared.bus.consumer import ProcessedEvent
from shared.bus.failures import NotYet
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.crypto import period_token
from shared.datakeys import DataKey, DataKeyStore, KeyDestroyed, MasterKeys
from shared.db import make_engine
from shared.eventkeys import EventKeyring
from shared.events.checkin import (
    EscalationFlagged,
    EscalationFlaggedV2,
    PersonalizationSubmitted,
    PersonalizationSubmittedV2,
    gated,
    gated_sealed,
)
from shared.events.subject import SubjectDataReply, SubjectDataRequest
from shared.topology import access_log_subject, consumer_name, export_subject
from tests.checkin.conftest import CONTRIBUTION_FIELDS, WEEKLY_LOW, WEEKLY_OK, _bus, deidentified, new_sub, run
from tests.consentevents import consent_changed
from tests.natsfixtures import ErrorLog, flushed

NOTE = "zebra-marmalade-note: the deadline pressure is awful"


def contributions(h) -> list[dict]:
    return [json.loads(d) for _, d in h.stream("CONTRIBUTION", "contribution.")]


def org_unit_of(h, sub: str, on: date) -> str | None:
    with Session(h.svc.runtime.engine) as session:
        return CONTRIBUTIONS.unit_on(session, h.pseudonym(sub), on)


def org_unit_known(h, sub: str, on: date) -> bool:
    return org_unit_of(h, sub, on) is not None


class TestAggregatorSeesOnlyDeidentifiedContributions:
    def test_aggregator_user_reads_only_contributions_without_identifiers_or_text(self, harness, caplog):
        subs = [new_sub() for _ in range(3)]
        harness.staff("team-blue")
        for sub in subs:
            harness.grant(sub, "checkin", "aggregate_insights", "personalization", "escalation")
            harness.assign(sub, "team-blue", date(2020, 1, 1))
        for sub in subs:
            harness.wait(lambda sub=sub: org_unit_known(harness, sub, date.today()), "org unit")
            crisis = sub == subs[0]
            note = NOTE + (" and I want to die" if crisis else "")
            assert harness.checkin(sub, note=note, talk_to_someone=crisis, share_note=crisis).status_code == 201
        week = iso_week(datetime.now(UTC).date())
        tokens = {period_token(harness.platform.secret("period_key"), harness.pseudonym(s), week) for s in subs}
        harness.wait(lambda: tokens <= {c["period_token"] for c in contributions(harness)}, "contributions")
        forbidden = [*subs, *(harness.pseudonym(s) for s in subs), "zebra", "marmalade", "deadline"]

        async def as_aggregator():
            log = ErrorLog()
            nc = await nats.connect(**harness.nats.connect_kwargs("aggregator"), error_cb=log.record)
            try:
                js = nc.jetstream(timeout=2)
                sub = await js.pull_subscribe(
                    "contribution.>", durable=consumer_name("aggregator", "contribution.>"), stream="CONTRIBUTION"
                )
                got = []
                while True:
                    try:
                        batch = await sub.fetch(256, timeout=0.5)
                    except (TimeoutError, NatsTimeout):  # nats-py raises either when caught up
                        break
                    for msg in batch:
                        got.append(msg)
                        await msg.ack()
                # The same user cannot read check-in subjects: not by a consumer, not directly
                # (a denied JetStream API request gets no reply at all).
                denied = nc.jetstream(timeout=0.5)
                with pytest.raises((NatsTimeout, nats.js.errors.APIError, asyncio.TimeoutError)):
                    await denied.pull_subscribe("checkin.>", durable="aggregator__checkin", stream="CHECKIN")
                with pytest.raises((NatsTimeout, nats.js.errors.APIError, asyncio.TimeoutError)):
                    await denied.get_msg("CHECKIN", 1)
                await nc.subscribe("checkin.>")
                await flushed(nc)
                await log.wait_for('subscription to "checkin.>"', timeout=10)
                return got
            finally:
                await nc.close()

        msgs = run(as_aggregator())
        assert msgs and {m.subject for m in msgs} <= {
            "contribution.aggregate.recorded.v1",
            "contribution.aggregate.retracted.v1",
        }
        for msg in msgs:
            body = deidentified(msg, forbidden)
            assert set(body) <= CONTRIBUTION_FIELDS
            assert "T" not in body["iso_week"] and body["org_unit"]
        mine = [json.loads(m.data) for m in msgs if json.loads(m.data)["period_token"] in tokens]
        assert sorted((c["metric"], c["org_unit"]) for c in mine) == sorted(
            [("mood", "team-blue"), ("who5_index", "team-blue")] * 3
        )
        # Nothing about the note reached logs or metric labels either.
        assert "zebra" not in caplog.text and "marmalade" not in caplog.text
        metrics = harness.svc.metrics()
        assert "zebra" not in metrics and harness.pseudonym(subs[0]) not in metrics

    def test_org_unit_moves_take_effect_from_the_next_period_and_no_unit_means_no_contribution(self, harness):
        stays, moved, unassigned = new_sub(), new_sub(), new_sub()
        today = datetime.now(UTC).date()
        monday = today - timedelta(days=today.weekday())
        for sub in (stays, moved, unassigned):
            harness.grant(sub, "checkin", "aggregate_insights")
        harness.staff("unit-a", "unit-b", "unit-c", "unit-d")
        harness.assign(stays, "unit-a", date(2020, 1, 1))
        harness.assign(stays, "unit-b", today + timedelta(days=1))  # a move during this period
        harness.assign(moved, "unit-c", date(2020, 1, 1))
        harness.assign(moved, "unit-d", monday)  # effective at the start of this period
        for sub in (stays, moved):
            harness.wait(lambda sub=sub: org_unit_known(harness, sub, today), "org unit")
        harness.wait(lambda: org_unit_of(harness, moved, today) == "unit-d", "move")
        for sub in (stays, moved, unassigned):
            assert harness.checkin(sub).status_code == 201
        key = harness.platform.secret("period_key")
        week = iso_week(today)
        token = {s: period_token(key, harness.pseudonym(s), week) for s in (stays, moved, unassigned)}
        got = harness.wait(
            lambda: (
                (c := contributions(harness)) and {token[stays], token[moved]} <= {x["period_token"] for x in c} and c
            )
        )
        units = {x["period_token"]: x["org_unit"] for x in got}
        assert units[token[stays]] == "unit-a" and units[token[moved]] == "unit-d"
        harness.drained()
        assert token[unassigned] not in units

    def test_withdrawing_aggregate_insights_retracts_this_weeks_token(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin", "aggregate_insights")
        harness.staff("unit-r")
        harness.assign(sub, "unit-r", date(2020, 1, 1))
        harness.wait(lambda: org_unit_known(harness, sub, date.today()), "org unit")
        harness.checkin(sub)
        token = period_token(harness.platform.secret("period_key"), harness.pseudonym(sub), iso_week(date.today()))
        harness.wait(lambda: any(c["period_token"] == token for c in contributions(harness)), "contribution")
        harness.withdraw(sub, "aggregate_insights")
        retraction = harness.wait(
            lambda: [
                c for c in contributions(harness) if c["period_token"] == token and c["type"].endswith("retracted.v1")
            ]
        )
        assert retraction[0]["org_unit"] == "unit-r"
        assert harness.checkin(sub).status_code == 201
        harness.drained()
        assert len([c for c in contributions(harness) if c["period_token"] == token]) == 3  # 2 metrics + retraction


class TestSealedConsentChanges:
    def test_a_change_read_after_its_subjects_key_was_shredded_deletes_what_the_purpose_held(self, harness):
        """Erasure shreds the subject's event key as soon as it commits, often before consumers
        read its withdrawals: check-in cannot open them, and reads them as ``withdrawn`` whatever
        they sealed (here: ``granted``), so the check-ins go (kept, had it ignored them)."""
        sub = new_sub()
        p = harness.pseudonym(sub)
        harness.grant(sub, "checkin")
        assert harness.checkin(sub).status_code == 201
        harness.wait(lambda: held_checkins(harness, p) == 1, "check-in stored")
        kek = harness.platform.secret("event_key_kek")

        async def shred_then_publish() -> None:
            bus = await _bus(harness.nats, "consent")
            try:
                event = await consent_changed(bus, kek, p, "checkin", "granted")
                keyring = EventKeyring(kek)
                keyring.attach(bus)
                assert await keyring.erase(p) == 1  # as consent erases it
                await bus.publish(event.subject, event.model_dump_json().encode(), str(event.event_id))
            finally:
                await bus.close()

        harness.svc.app.state.checkin.event_keys.evict(p)  # as check-in's erasure consumer does
        run(shred_then_publish())
        harness.wait(lambda: held_checkins(harness, p) == 0, "check-ins deleted")


def held_checkins(h, pseudonym: str) -> int:
    with Session(h.svc.runtime.engine) as session:
        return len(session.exec(select(Checkin).where(Checkin.pseudonym == pseudonym)).all())


class TestConsumerSideGate:
    def test_gated_handlers_apply_only_under_current_consent(self):
        """Granted: applied. Denied: dropped. Unknown (gate not synced): put back, never dropped
        (this test used to assert that a blind gate drops the event: issue 12 item 1)."""
        pseudonym, other = "ab" * 32, "cd" * 32
        seen: list[str] = []
        gate = ConsentGate()
        handle = gated(gate, lambda _s, e: seen.append(e.type))
        flag = dict(
            pseudonym=pseudonym, checkin_ref=uuid.uuid4(), severity="critical", reasons=["crisis_language"],
            lang="en", flagged_at=datetime.now(UTC),
        )  # fmt: skip
        personal = PersonalizationSubmitted(pseudonym=pseudonym, lang="en", iso_week="2026-W01")
        for blind in (personal, EscalationFlagged(**flag, contact_requested=False)):
            with pytest.raises(NotYet):  # never synced: unknown, so the consumer puts it back
                handle(None, blind)
        assert seen == []
        # The employee's own request to talk is its own basis: it flows without escalation consent.
        handle(None, EscalationFlagged(**{**flag, "reasons": ["contact_requested"]}, contact_requested=True))
        assert seen == ["checkin.escalation.flagged.v1"]
        gate.load({kv_key(pseudonym, "escalation"): kv_value("granted", 1, "2026-01-01T00:00:00Z")})
        handle(None, EscalationFlagged(**flag, contact_requested=False))  # synced and granted: applied
        handle(None, personal)  # synced, personalization never granted: denied, dropped
        handle(None, EscalationFlagged(**{**flag, "pseudonym": other}, contact_requested=False))  # denied
        assert seen == ["checkin.escalation.flagged.v1"] * 2
        assert getattr(handle, "consent_gate", None) is gate  # the consumer waits for this gate

    def test_withdrawal_between_produce_and_consume_stops_the_flow_at_the_consumer(self, harness, db_url):
        withdrawn, kept = new_sub(), new_sub()
        for sub in (withdrawn, kept):
            harness.grant(sub, "checkin", "personalization", "escalation")
            assert harness.checkin(sub, note="I want to die, can't sleep").status_code == 201
        harness.drained()  # both subjects' events are in the stream, not yet consumed by anyone
        harness.withdraw(withdrawn, "personalization", "escalation")
        engine = make_engine(db_url)
        SQLModel.metadata.create_all(engine, tables=[ProcessedEvent.__table__])  # type: ignore[list-item]
        applied: dict[str, list[str]] = {"recommender": [], "escalation": []}

        async def consume(user: str, filter_subject: str, contract) -> tuple[int, list[str]]:
            kw = harness.nats.connect_kwargs(user)
            bus = Bus(user, kw["servers"][0], kw["user"], kw["password"])
            await bus.connect()
            gate = ConsentGate()
            await gate.start(bus)
            keyring = EventKeyring(harness.platform.secret("event_key_kek"))
            keyring.attach(bus)  # the consumer opens the sealed facts (the flag's consent rule needs them)
            consumer = Consumer(
                bus, engine, stream="CHECKIN", name=consumer_name(user, filter_subject), filter_subject=filter_subject,
                adapter=TypeAdapter(contract),
                handler=gated_sealed(gate, keyring, lambda _s, event, _facts: applied[user].append(event.pseudonym)),
            )  # fmt: skip
            try:
                deadline = asyncio.get_running_loop().time() + 10
                while not gate.synced:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.02)
                consumer.start()
                while consumer.applied < 2 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.05)
                return consumer.applied, applied[user]
            finally:
                await consumer.stop()
                await gate.stop()
                assert bus.nc is not None
                await bus.nc.close()  # not Bus.close(): its drain waits 5 s on the stopped pull subscription

        for user, filt, contract in (
            ("recommender", "checkin.personalization.>", PersonalizationSubmittedV2),
            ("escalation", "checkin.escalation.>", EscalationFlaggedV2),
        ):
            delivered, handled = run(consume(user, filt, contract))
            assert delivered >= 2, user  # both were delivered and acknowledged ...
            assert harness.pseudonym(kept) in handled, user  # ... the consented one applied
            assert harness.pseudonym(withdrawn) not in handled, user  # ... the withdrawn one dropped
        engine.dispose()


class TestErasureAndSubjectRights:
    def test_erasure_deletes_rows_destroys_the_key_and_old_ciphertext_stays_unreadable(self, held_case_desk):
        case_desk = held_case_desk
        harness = case_desk.harness
        sub = new_sub()
        p = harness.pseudonym(sub)
        harness.grant(sub, "checkin", "escalation")
        harness.assign(sub, "unit-e", date(2020, 1, 1))
        r = harness.checkin(sub, answers=WEEKLY_LOW, note=NOTE, talk_to_someone=True, share_note=True)
        assert r.status_code == 201
        put = {"weekday": "monday", "time": "09:00", "timezone": "Europe/Paris"}
        assert harness.svc.client.put("/v1/me/nudges", json=put, headers=harness.auth(sub)).status_code == 200
        flag = harness.wait(lambda: harness.opened("checkin.escalation.", sub))[0]
        engine = harness.svc.runtime.engine
        with Session(engine) as session:
            row = session.exec(select(Checkin).where(Checkin.pseudonym == p)).one()
            db_copy = (row.id, bytes(row.payload), bytes(row.note))
        case_id = case_desk.hold(sub, "C7")
        assert case_desk.open_note(case_id, "C7").status_code == 200

        request_id = harness.request_erasure(sub)
        acks = harness.wait_stream("CHECKIN", "checkin.erasure.erased.v1", containing=str(request_id))
        ack = json.loads(acks[0][1])
        assert ack["service"] == "checkin" and ack["records"] >= 5  # check-in, trend, nudge, org unit, key

        with Session(engine) as session:
            for model in (Checkin, CheckinTrend, NudgeSchedule, DataKey):
                assert session.exec(select(model).where(model.pseudonym == p)).all() == [], model
            assert CONTRIBUTIONS.export(session, p) == []  # the org-unit history
            fresh = DataKeyStore(MasterKeys.from_settings(harness.platform))
            with pytest.raises(KeyDestroyed):
                fresh.require(session, p)
        assert harness.svc.app.state.checkin.keys.cached(p) is None
        # The copy of the shared note (kept by the escalation case, under a legal hold here, as in
        # the stream) no longer opens: its key is gone.
        gone = case_desk.open_note(case_id, "C7")
        assert gone.status_code == 410, gone.text
        with Session(engine) as session:  # the stream's copy names a key that no longer exists
            assert session.get(DataKey, flag["note"]["key_id"]) is None
        # The copied database ciphertext does not open under the subject's next key either.
        harness.checkin(sub)  # consent still granted in this test: a new life, a new key
        with Session(engine) as session:
            new_key = DataKeyStore(MasterKeys.from_settings(harness.platform)).require(session, p)
        with pytest.raises(Exception, match="does not open"):
            new_key.open(db_copy[2], "checkin", db_copy[0], "note")
        assert harness.svc.client.get("/v1/me/checkins", headers=harness.auth(sub)).json()["items"][0]["note"] is None

    def test_export_and_access_log_answer_consents_requests(self, case_desk):
        harness = case_desk.harness
        sub = new_sub()
        p = harness.pseudonym(sub)
        harness.grant(sub, "checkin")
        harness.checkin(sub, answers=WEEKLY_OK, note="my own words", talk_to_someone=True, share_note=True)
        flag = harness.wait(lambda: harness.opened("checkin.escalation.", sub))[0]
        assert flag["note"] is not None
        assert case_desk.open_note(case_desk.hold(sub, "C9"), "C9").status_code == 200

        async def ask(subject: str) -> dict:
            nc = await nats.connect(**harness.nats.connect_kwargs("consent"))
            try:
                msg = await nc.request(subject, SubjectDataRequest(pseudonym=p).model_dump_json().encode(), timeout=5)
                return SubjectDataReply.model_validate_json(msg.data).data
            finally:
                await nc.close()

        exported = run(ask(export_subject("checkin")))
        assert (
            exported["checkins"][0]["note"] == "my own words" and exported["checkins"][0]["score"]["who5_index"] == 76
        )
        log = run(ask(access_log_subject("checkin")))
        actions = [(e["actor_role"], e["action"]) for e in log["entries"]]
        assert ("counsellor", "checkin.note.read") in actions and ("service", "checkin.export") in actions
        assert all("C9" not in json.dumps(e) for e in log["entries"])


class TestSharedNoteAccess:
    """Issue 11 item 8: counsellors read notes without a case or consent."""

    def test_after_withdrawal_a_different_counsellor_cannot_open_a_note_shared_under_consent_alone(self, case_desk):
        harness = case_desk.harness
        sub = new_sub()
        p = harness.pseudonym(sub)
        harness.grant(sub, "checkin", "escalation")
        note = "I want to die, nobody would notice"
        assert harness.checkin(sub, note=note, share_note=True).status_code == 201
        flag = harness.wait(lambda: harness.opened("checkin.escalation.", sub))[0]
        assert flag["contact_requested"] is False  # shared under the escalation consent alone
        case_id = case_desk.hold(sub, "C1")
        assert case_desk.open_note(case_id, "C1").json() == {"text": note}
        assert case_desk.open_note(case_id, "C2").status_code == 403  # C2 does not hold the case
        harness.withdraw(sub, "escalation")
        case_desk.harness.wait(lambda: case_desk.escalation.runtime.gate.answer(p, "escalation").value == "denied")
        # The attack: another counsellor asks for the note after the withdrawal (the old API took
        # the stream's copy directly; it no longer exists), and cannot even take the case over.
        old_shape = {"pseudonym": p, "checkin_ref": flag["checkin_ref"], "note": flag["note"]}
        headers = harness.auth("C2", "counsellor")
        assert harness.svc.client.post("/v1/shared-notes/open", json=old_shape, headers=headers).status_code == 422
        refused = case_desk.open_note(case_id, "C2")
        assert refused.status_code == 403 and refused.json()["type"].endswith("/case-not-held")
        take_over = case_desk.escalation.client.post(f"/v1/cases/{case_id}/ack", headers=headers)
        harness.wait(lambda: case_desk.open_note(case_id, "C1").status_code == 403, "withdrawal reached the case")
        assert take_over.status_code in (200, 409)  # 409 once the withdrawal closed the case
        assert case_desk.open_note(case_id, "C2").status_code == 403
        # Every read stayed in the employee's access log: exactly the one by C1.
        with Session(harness.svc.runtime.engine) as session:
            from shared.audit import entries_for

            reads = [e for e in entries_for(session, p) if e.action == "checkin.note.read"]
        assert [e.actor for e in reads] == [harness.pseudonym("C1")]

    def test_an_explicit_request_for_contact_is_its_own_basis_for_the_holder(self, case_desk):
        harness = case_desk.harness
        sub = new_sub()
        harness.grant(sub, "checkin")  # no escalation consent at all
        r = harness.checkin(sub, note="please call me", talk_to_someone=True, share_note=True)
        assert r.status_code == 201
        case_id = case_desk.hold(sub, "C3")
        assert case_desk.open_note(case_id, "C3").json() == {"text": "please call me"}
        assert case_desk.open_note(case_id, "C4").status_code == 403
        assert case_desk.open_note("0" * 32, "C3").status_code == 404
