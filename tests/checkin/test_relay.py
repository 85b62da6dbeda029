"""The outbox relay on check-in's stream: publishes whole batches in order, keeps what was not acknowledged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
from sqlmodel import Session, select

from shared.bus import Bus, stage_raw
from shared.bus.outbox import OutboxMessage, OutboxRelay
from shared.db import make_engine, run_migrations

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"


def test_a_batch_goes_out_in_order_and_unacknowledged_rows_stay(service_nats, db_url):
    run_migrations(db_url, MIGRATIONS)
    engine = make_engine(db_url)
    with Session(engine) as session:
        for i in range(5):
            stage_raw(session, "checkin.personalization.submitted.v1", json.dumps({"n": i}).encode(), f"ok-{i}")
        # Not a subject the checkin user may publish: the broker drops it and nothing answers.
        stage_raw(session, "recommender.personalization.x.v1", b"{}", "denied-1")
        session.commit()

    async def body() -> list[int]:
        kw = service_nats.connect_kwargs("checkin")
        bus = Bus("checkin", kw["servers"][0], kw["user"], kw["password"])
        await bus.connect()
        relay = OutboxRelay(engine, bus)
        relay.ack_timeout, relay.linger = 0.5, 0.0
        try:
            try:
                await relay.flush_once()
                raise AssertionError("the unacknowledged row must be reported")
            except ConnectionError:
                pass
            assert relay.published == 5
        finally:
            assert bus.nc is not None
            await bus.nc.close()
        ops = await nats.connect(**service_nats.connect_kwargs("ops"))
        try:
            js = ops.jetstream()
            info = await js.stream_info("CHECKIN")
            seqs = range(info.state.first_seq, info.state.last_seq + 1)
            return [json.loads((await js.get_msg("CHECKIN", s)).data)["n"] for s in seqs]
        finally:
            await ops.close()

    assert asyncio.run(body()) == [0, 1, 2, 3, 4]  # stored in outbox order
    with Session(engine) as session:
        left = session.exec(select(OutboxMessage)).all()
        assert [(m.msg_id, m.attempts) for m in left] == [("denied-1", 1)]
    engine.dispose()
