"""Aggregator: contribution ingest through the durable consumer vs raw JetStream fetch+ack, and
the release of one week for 10,000 units x 6 metrics (time, and RSS as contributions grow)."""

from __future__ import annotations

import asyncio
import hashlib
import resource
import time
from datetime import UTC, date, datetime
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig
from sqlalchemy import func, insert
from sqlmodel import Session, select

from bench.common import Result, nats_server, sqlite_url
from services.aggregator.contributions import handlers
from services.aggregator.contributions import service as contributions
from services.aggregator.contributions.models import Cell, PendingToken
from services.aggregator.org import service as org
from services.aggregator.releases import service as releases
from shared.bus import Bus, Consumer
from shared.db import make_engine, run_migrations
from shared.events.contribution import ContributionRecorded
from shared.events.hris import OrgUnitChanged
from shared.release.rules import ReleaseRules
from shared.topology import consumer_name

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "aggregator" / "migrations"
N_INGEST = 5_000
UNITS, METRICS = 10_000, ("who5_index", "mood", "days_worked", "meeting_hours_per_day", "focus_hours_per_day",
                          "after_hours_message_share")  # fmt: skip
WEEK = "2026-W10"
SMALL, LARGE = 100_000, 1_000_000  # contributions held before a release (RSS is compared between them)
RECORDED = 20_000  # of which the last go through the contributions service


def _token(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _event(i: int, week: str = WEEK) -> ContributionRecorded:
    return ContributionRecorded(
        source="checkin", org_unit=f"team-{i % 200}", iso_week=week, metric="who5_index", value=float(i % 100),
        period_token=_token(i, week),
    )  # fmt: skip


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _ingest() -> tuple[float, float]:
    server = nats_server()
    server.start()
    server.provision()
    try:
        kw = server.connect_kwargs("checkin")
        producer = Bus("checkin", kw["servers"][0], kw["user"], kw["password"])
        await producer.connect()
        for i in range(0, N_INGEST, 500):
            await asyncio.gather(
                *(producer.publish(e.subject, e.model_dump_json().encode(), str(e.event_id))
                  for e in (_event(n) for n in range(i, i + 500)))
            )  # fmt: skip
        await producer.close()

        # Baseline: the same messages fetched and acked raw (as ops, through a consumer of its own).
        okw = server.connect_kwargs("ops")
        ops = Bus("ops", okw["servers"][0], okw["user"], okw["password"])
        await ops.connect()
        await ops.js.add_consumer(
            "CONTRIBUTION", ConsumerConfig(durable_name="bench_raw", ack_policy=AckPolicy.EXPLICIT,
                                           filter_subject="contribution.>")
        )  # fmt: skip
        sub = await ops.js.pull_subscribe_bind("bench_raw", stream="CONTRIBUTION")
        binding = handlers.binding()
        t, seen = time.perf_counter(), 0
        while seen < N_INGEST:
            for msg in await sub.fetch(binding.batch, timeout=5):  # the consumer's fetch size
                await msg.ack()
                seen += 1
        raw = N_INGEST / (time.perf_counter() - t)
        await ops.close()

        url = sqlite_url("aggregator")
        run_migrations(url, MIGRATIONS)
        engine = make_engine(url)
        akw = server.connect_kwargs("aggregator")
        bus = Bus("aggregator", akw["servers"][0], akw["user"], akw["password"])
        await bus.connect()
        consumer = Consumer(
            bus, engine, stream="CONTRIBUTION", name=consumer_name("aggregator", "contribution.>"),
            filter_subject="contribution.>", adapter=binding.adapter, handler=binding.handler, batch=binding.batch,
        )  # fmt: skip
        t = time.perf_counter()
        consumer.start()
        while consumer.applied < N_INGEST:
            await asyncio.sleep(0.01)
        ours = N_INGEST / (time.perf_counter() - t)
        await consumer.stop()
        await bus.close()
        engine.dispose()
        return ours, raw
    finally:
        server.stop()


def _release_10k() -> tuple[float, float]:
    """One week of 10,000 units (100 divisions of 100 teams) x 6 metrics, ~20 people per team."""
    url = sqlite_url("aggregator-release")
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    with Session(engine) as s:
        for d in range(100):
            org.on_unit_changed(s, OrgUnitChanged(org_unit=f"div-{d}", state="active", effective_from=date(2020, 1, 1)))
            for t in range(99):
                org.on_unit_changed(
                    s, OrgUnitChanged(org_unit=f"team-{d}-{t}", parent=f"div-{d}", state="active",
                                      effective_from=date(2020, 1, 1))
                )  # fmt: skip
        for metric in METRICS:
            for d in range(100):
                for t in range(99):
                    n = 3 + (d * 7 + t * 13) % 35
                    s.add(Cell(iso_week=WEEK, metric=metric, org_unit=f"team-{d}-{t}", count=n, total=n * 3.0,
                               histogram=""))  # fmt: skip
        s.commit()
    with Session(engine) as s:
        t0 = time.perf_counter()
        releases.release_week(s, WEEK, ReleaseRules(), datetime.now(UTC))
        s.commit()
        elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed, _rss_mb()


def _hold(engine, start: int, stop: int, week: str) -> None:
    """Contributions ``start``..``stop`` of ``week`` held as the open week holds them (a token row
    each, per-unit sums), written in bulk: recording a million through the handler would take
    this machine a quarter of an hour."""
    for lo in range(start, stop, 20_000):
        rows = [_event(i, week) for i in range(lo, min(lo + 20_000, stop))]
        with Session(engine) as s:
            s.execute(insert(PendingToken), [
                {"iso_week": e.iso_week, "metric": e.metric, "period_token": e.period_token, "org_unit": e.org_unit,
                 "value": e.value} for e in rows
            ])  # fmt: skip
            s.commit()
    with Session(engine) as s:  # the cells' sufficient statistics, as record() leaves them
        per_unit = s.exec(
            select(PendingToken.org_unit, func.count(), func.sum(PendingToken.value))
            .where(PendingToken.iso_week == week)
            .group_by(PendingToken.org_unit)
        ).all()
        for unit, n, total in per_unit:
            s.add(Cell(iso_week=week, metric="who5_index", org_unit=unit, count=n, total=float(total), histogram=""))
        s.commit()


def _rss_growth() -> tuple[float, float, float]:
    """RSS with SMALL and then LARGE contributions held in an open week (two weeks, one after the
    other): the last RECORDED of each go through the contributions service (``record``, 500 per
    transaction, as a consumer batch), then the week is released (its tokens deleted). Returns both
    RSS marks and the record rate."""
    url = sqlite_url("aggregator-rss")
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    marks: list[float] = []
    recorded, spent = 0, 0.0
    for n, target in enumerate((SMALL, LARGE)):
        week = f"2026-W{11 + n}"
        _hold(engine, 0, target - RECORDED, week)
        t = time.perf_counter()
        for lo in range(target - RECORDED, target, 500):
            with Session(engine) as s:
                for i in range(lo, lo + 500):
                    contributions.record(s, _event(i, week))
                s.commit()
        spent += time.perf_counter() - t
        recorded += RECORDED
        with Session(engine) as s:
            releases.release_week(s, week, ReleaseRules(), datetime.now(UTC))
            s.commit()
        marks.append(_rss_mb())
    engine.dispose()
    return marks[0], marks[1], recorded / spent


def run() -> list[Result]:
    ours, raw = asyncio.run(_ingest())
    elapsed, rss_release = _release_10k()
    small, large, rate = _rss_growth()
    return [
        Result(
            name="contribution ingest",
            value=ours,
            unit="ev/s",
            baseline_name="raw fetch+ack",
            baseline=raw,
            goal=">= 0.3x",
            met=ours >= 0.3 * raw,
            notes=f"{N_INGEST:,} contributions, durable consumer, one transaction per fetched batch, SQLite",
        ),
        Result(
            name="release 10k units x 6 metrics",
            value=elapsed,
            unit="s",
            baseline_name="RSS MB after",
            baseline=rss_release,
            goal="",
            met=True,
            notes="one week, ~200,000 people: noise (OpenDP), ledger, suppression, stored rows",
        ),
        Result(
            name=f"RSS after {LARGE // 1000}k contributions",
            value=large,
            unit="MB",
            baseline_name=f"after {SMALL // 1000}k",
            baseline=small,
            goal="< 1.5x",
            met=large < 1.5 * small,
            notes=f"open week held in the database (bulk), last {RECORDED:,} each via record() at {rate:,.0f}/s, "
            "then released: state grows with units x weeks x metrics (+ open tokens) in the database, not in memory",
        ),
    ]
