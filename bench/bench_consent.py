"""Consent: withdrawal -> every gate denies, and consent changes/s through the API.

1. Propagation. 1,000 withdrawals through the consent service's own write path (the unit of work
   the DELETE endpoint runs: row, history, signed receipt, KV put and event staged; the
   group-commit writer commits it; the outbox relay publishes the committed rows), timed until the
   ConsentGates of checkin, recommender and escalation (each connected as that NATS user) all
   deny. Two figures: from the start of the withdrawal (what the issue names) and from its commit.
   Baseline, same run, same gates: a raw ``kv.put`` of ``withdrawn`` until they all deny.
2. Throughput. ``PUT /v1/me/consents/{purpose}`` on the real consent app (JWT, validation, row,
   receipt, outbox, KV via the relay) against a bare FastAPI PUT with the same body model, both
   served by uvicorn in a child process and driven by ``bench.load.hammer``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bench.common import Result, nats_server, sqlite_url
from bench.load import free_port, hammer, serve_app, serve_service
from services.consent import service
from services.consent.config import ConsentSettings
from services.consent.deps import ConsentContext
from services.consent.schemas import Channel, ConsentGrant
from services.consent.writer import ConsentWriter
from shared.auth import Role, dev_token
from shared.bus import Bus, OutboxRelay
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.db import make_engine, run_migrations
from shared.events.consent import Purpose
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET, KV_WATCHERS

WITHDRAWALS = 1_000
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "consent" / "migrations"


def _pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


async def _bus(server: Any, user: str) -> Bus:
    kw = server.connect_kwargs(user)
    bus = Bus(user, server.url, kw["user"], kw["password"])
    await bus.connect()
    return bus


class _Denials:
    """Resolves a future once every gate has revoked one key."""

    def __init__(self, gates: list[ConsentGate]) -> None:
        self.waiting: dict[str, tuple[asyncio.Future[float], set[int]]] = {}
        for i, gate in enumerate(gates):
            gate.on_revoked(lambda subject, purpose, i=i: self._revoked(subject, i))
        self.count = len(gates)

    def expect(self, subject: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[subject] = (future, set())
        return future

    def _revoked(self, subject: str, gate: int) -> None:
        entry = self.waiting.get(subject)
        if entry is None:
            return
        future, seen = entry
        seen.add(gate)
        if len(seen) == self.count and not future.done():
            future.set_result(time.perf_counter())
            del self.waiting[subject]


async def _until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup did not converge")
        await asyncio.sleep(0.01)


async def _propagation(server: Any, data_dir: Path) -> tuple[list[float], list[float], list[float]]:
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    url = sqlite_url("consent")
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    ctx = ConsentContext.from_settings(ConsentSettings(platform=platform, database_url=url))
    consent = await _bus(server, "consent")
    relay = OutboxRelay(engine, consent)
    writer = ConsentWriter(engine, ctx, on_commit=relay.handoff)
    relay.deleter = writer.delete_outbox
    relay.start()
    gates, buses = [], []
    for user in KV_WATCHERS:
        gate, bus = ConsentGate(), await _bus(server, user)
        await gate.start(bus)
        gates.append(gate)
        buses.append(bus)
    denials = _Denials(gates)
    kv = await consent.js.key_value(KV_BUCKET)

    subs = [f"B{i:05d}" for i in range(WITHDRAWALS)]
    subjects = [ctx.pseudonym(s) for s in subs]
    body = ConsentGrant(policy_version=1)
    for i in range(0, WITHDRAWALS, 50):
        await asyncio.gather(
            *(
                writer.run(lambda s, sub=sub: service.grant(s, ctx, sub, Purpose.checkin, body))
                for sub in subs[i : i + 50]
            )
        )
    await _until(lambda: all(g.allowed(s, "checkin") for g in gates for s in subjects))

    total: list[float] = []
    after_commit: list[float] = []
    for sub, subject in zip(subs, subjects, strict=True):
        denied = denials.expect(subject)
        start = time.perf_counter()
        await writer.run(lambda s, sub=sub: service.withdraw(s, ctx, sub, Purpose.checkin, Channel.web, None))
        committed = writer.committed_at  # taken in the writer thread, right after the commit
        end = await asyncio.wait_for(denied, 10)
        total.append((end - start) * 1000)
        after_commit.append((end - committed) * 1000)

    # Baseline: the same gates, a raw KV put straight from the consent user.
    raw: list[float] = []
    keys = [f"{'f' * 58}{i:06d}" for i in range(WITHDRAWALS)]
    for key in keys:
        await kv.put(kv_key(key, "checkin"), kv_value("granted", 1, "t"))
    await _until(lambda: all(g.allowed(k, "checkin") for g in gates for k in keys))
    for key in keys:
        denied = denials.expect(key)
        start = time.perf_counter()
        await kv.put(kv_key(key, "checkin"), kv_value("withdrawn", 1, "t"))
        raw.append((await asyncio.wait_for(denied, 10) - start) * 1000)

    await writer.stop()
    await relay.stop()
    for gate in gates:
        await gate.stop()
    for bus in [*buses, consent]:
        assert bus.nc is not None
        await bus.nc.close()  # not drain(): nothing is in flight, and drain waits out pull subscriptions
    engine.dispose()
    return total, after_commit, raw


def bare_app() -> FastAPI:
    """The baseline: a FastAPI PUT with the same body model, no auth, no database, no bus."""
    app = FastAPI()

    @app.put("/v1/me/consents/{purpose}")
    def put(purpose: Purpose, body: ConsentGrant) -> dict[str, Any]:
        return {"purpose": purpose, "state": "granted", "policy_version": body.policy_version}

    return app


def _consent_app(server: Any, data_dir: Path) -> Any:
    return serve_service("consent", server, data_dir, sqlite_url("consent-api"))


def _throughput(server: Any, data_dir: Path) -> tuple[Any, Any]:
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    # Many employees, so requests rarely queue on one subject's row; each PUT records a grant
    # (row, history, signed receipt, KV put and event through the outbox).
    tokens = [dev_token(platform, f"T{i:04d}", [Role.employee]) for i in range(512)]
    body = b'{"policy_version": 1, "language": "en", "channel": "web"}'

    def headers(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"}

    kwargs: dict[str, Any] = {"body": lambda i: body, "headers": headers, "concurrency": 32, "duration": 5.0}
    with serve_app("bench.bench_consent:bare_app", port=free_port()) as url:
        bare = hammer(url, "PUT", "/v1/me/consents/checkin", **kwargs)
    with _consent_app(server, data_dir) as url:
        api = hammer(url, "PUT", "/v1/me/consents/checkin", **kwargs)
    return api, bare


def run() -> list[Result]:
    server = nats_server()
    server.start()
    server.provision()
    data_dir = Path(tempfile.mkdtemp(prefix="kinwell-bench-consent-"))
    os.environ.setdefault("KINWELL_LOG_LEVEL", "WARNING")
    try:
        total, after_commit, raw = asyncio.run(_propagation(server, data_dir))
        api, bare = _throughput(server, data_dir)
    finally:
        server.stop()
    p50, p99, raw50, raw99 = _pct(total, 0.5), _pct(total, 0.99), _pct(raw, 0.5), _pct(raw, 0.99)
    c50, c99 = _pct(after_commit, 0.5), _pct(after_commit, 0.99)
    ok = sum(n for status, n in api.statuses.items() if status == 200)
    rate = ok / api.seconds if api.seconds else 0.0
    same_run = f"{WITHDRAWALS:,} withdrawals, gates of checkin/recommender/escalation; raw p50 {raw50:.2f} ms"
    return [
        Result(
            name="withdrawal -> all gates deny p99",
            value=p99,
            unit="ms",
            baseline_name="raw KV put->watch p99",
            baseline=raw99,
            goal="<= 2x",
            met=p99 <= 2 * raw99,
            notes=f"{same_run}; p50 {p50:.2f} ms, mean {statistics.fmean(total):.2f} ms (writer, row, receipt, relay)",
        ),
        Result(
            name="withdrawal commit -> all gates deny p99",
            value=c99,
            unit="ms",
            baseline_name="raw KV put->watch p99",
            baseline=raw99,
            goal="<= 2x",
            met=c99 <= 2 * raw99,
            notes=f"{same_run}; p50 {c50:.2f} ms (relay fast path + KV watch)",
        ),
        Result(
            name="consent changes via API",
            value=rate,
            unit="/s",
            baseline_name="bare FastAPI PUT",
            baseline=bare.rps,
            goal=">= 0.3x",
            met=rate >= 0.3 * bare.rps,
            notes=f"api: {api.summary()}; bare: {bare.summary()}",
        ),
    ]
