"""Consent: withdrawal -> every gate denies, and consent changes/s through the API.

1. Propagation. 1,000 withdrawals through the consent service's own write path (what the DELETE
   endpoint calls: row, history, signed receipt, KV put and event staged, committed by the
   group-commit writer, the put written by the outbox relay as a versioned compare-and-set, the
   answer given once it is stored), timed until the ConsentGates of checkin, recommender and
   escalation (each connected as that NATS user) all deny. Also printed: when the withdrawal was
   answered (the 200), and the time from its commit.
   Baseline, same run, same gates: a raw ``kv.put`` of ``withdrawn`` until they all deny.
2. Throughput. ``PUT /v1/me/consents/{purpose}`` on the real consent app (JWT, validation, row,
   receipt, outbox, KV via the relay) against a bare FastAPI PUT with the same body model, both
   served by uvicorn in a child process and driven by ``bench.load.hammer``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bench.common import Result, nats_server, sqlite_url
from bench.load import free_port, hammer, serve_app, serve_service
from services.consent.config import ConsentSettings
from services.consent.consents import service
from services.consent.consents.schemas import Channel, ConsentGrant
from services.consent.deps import ConsentContext
from services.consent.writer import ConsentWriter
from shared.auth import Role, dev_token
from shared.bus import Bus, OutboxRelay
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.db import make_engine, run_migrations
from shared.events.consent import Purpose
from shared.settings import PlatformSettings
from shared.topology import KV_BUCKET, KV_WATCHERS

WITHDRAWALS = 1_000
WARMUP = 50
SETTLE_S = 0.005
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "consent" / "migrations"


def _pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


async def _bus(server: Any, user: str) -> Bus:
    kw = server.connect_kwargs(user)
    bus = Bus(user, server.url, kw["user"], kw["password"])
    await bus.connect()
    return bus


def _gate_process(url: str, user: str, password: str, reports: Connection, commands: Connection) -> None:
    """One service's ConsentGate in its own process, as in production (``spawn``ed child)."""
    asyncio.run(_gate_main(url, user, password, reports, commands))


async def _gate_main(url: str, user: str, password: str, reports: Connection, commands: Connection) -> None:
    os.environ.setdefault("KINWELL_LOG_LEVEL", "WARNING")
    bus = Bus(user, url, user, password)
    await bus.connect()
    gate = ConsentGate()
    # perf_counter is CLOCK_MONOTONIC, one clock for every process of the machine.
    gate.on_denied(lambda subject, purpose: reports.send(("deny", subject, time.perf_counter())))
    gate.on_revoked(lambda subject, purpose: reports.send(("final", subject, time.perf_counter())))
    await gate.start(bus)
    loop = asyncio.get_running_loop()
    while (command := await loop.run_in_executor(None, commands.recv))[0] != "stop":
        keys: list[str] = command[1]
        while not all(gate.allowed(key, "checkin") for key in keys):
            await asyncio.sleep(0.01)
        reports.send(("allowed", "", time.perf_counter()))
    await gate.stop()
    assert bus.nc is not None
    await bus.nc.close()


class _Gates:
    """The gates of checkin, recommender and escalation, each a process connected as its NATS
    user; resolves a future once every gate has denied a key (``deny``) or has been told of its
    committed revocation (``final``), with the time the last of them did."""

    def __init__(self, server: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[tuple[str, str], tuple[asyncio.Future[float], dict[int, float]]] = {}
        self.allowed: asyncio.Queue[int] = asyncio.Queue()
        self.children: list[tuple[Any, Connection]] = []
        for i, user in enumerate(KV_WATCHERS):
            kw = server.connect_kwargs(user)
            report_r, report_w = ctx.Pipe(duplex=False)
            command_r, command_w = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=_gate_process, args=(server.url, user, kw["password"], report_w, command_r), daemon=True
            )
            child.start()
            self.children.append((child, command_w))
            threading.Thread(target=self._reader, args=(i, report_r), daemon=True).start()

    def _reader(self, gate: int, reports: Connection) -> None:
        try:
            while True:
                kind, subject, at = reports.recv()
                self.loop.call_soon_threadsafe(self._report, gate, kind, subject, at)
        except (EOFError, OSError):
            return

    def _report(self, gate: int, kind: str, subject: str, at: float) -> None:
        if kind == "allowed":
            self.allowed.put_nowait(gate)
            return
        entry = self.waiting.get((kind, subject))
        if entry is None:
            return
        future, seen = entry
        seen.setdefault(gate, at)
        if len(seen) == len(self.children) and not future.done():
            future.set_result(max(seen.values()))
            del self.waiting[(kind, subject)]

    def expect(self, kind: str, subject: str) -> asyncio.Future[float]:
        future = self.loop.create_future()
        self.waiting[(kind, subject)] = (future, {})
        return future

    async def until_allowed(self, keys: list[str], timeout: float = 60.0) -> None:
        for _, commands in self.children:
            commands.send(("allowed", keys))
        for _ in self.children:
            await asyncio.wait_for(self.allowed.get(), timeout)

    def stop(self) -> None:
        for child, commands in self.children:
            commands.send(("stop", []))
            child.join(10)
            if child.is_alive():
                child.terminate()


async def _until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup did not converge")
        await asyncio.sleep(0.01)


async def _propagation(server: Any, data_dir: Path) -> dict[str, list[float]]:
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    url = sqlite_url("consent")
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    ctx = ConsentContext.from_settings(ConsentSettings(platform=platform, database_url=url))
    consent = await _bus(server, "consent")
    ctx.event_keys.attach(consent)  # each change's event is sealed under the subject's event key
    relay = OutboxRelay(engine, consent)
    writer = ConsentWriter(engine, ctx, on_commit=relay.handoff)
    relay.deleter = writer.delete_outbox
    relay.start()
    gates = _Gates(server)
    kv = await consent.js.key_value(KV_BUCKET)

    total = WARMUP + WITHDRAWALS
    subs = [f"B{i:05d}" for i in range(total)]
    subjects = [ctx.pseudonym(s) for s in subs]
    keys = [f"{'f' * 58}{i:06d}" for i in range(total)]  # the baseline's own keys
    body = ConsentGrant(policy_version=1)
    for i in range(0, total, 50):
        await asyncio.gather(
            *(
                writer.run(lambda s, sub=sub: service.grant(s, ctx, sub, Purpose.checkin, body))
                for sub in subs[i : i + 50]
            )
        )
    for key in keys:
        await kv.put(kv_key(key, "checkin"), kv_value("granted", 1, "t"))
    await gates.until_allowed(subjects + keys)

    # Interleaved, a withdrawal then a raw put, so that both see the same machine, each started
    # once the one before has settled (its relay acks, the gates' reports); the first WARMUP of
    # each are not counted.
    times: dict[str, list[float]] = {"deny": [], "answered": [], "final_from_commit": [], "commit": [], "raw": []}
    for i, (sub, subject, key) in enumerate(zip(subs, subjects, keys, strict=True)):
        denied, final = gates.expect("deny", subject), gates.expect("final", subject)
        await asyncio.sleep(SETTLE_S)
        start = time.perf_counter()
        await writer.run(lambda s, sub=sub: service.withdraw(s, ctx, sub, Purpose.checkin, Channel.web, None))
        answered = time.perf_counter()
        commit = writer.committed_at  # taken in the writer thread, right after the commit
        end = await asyncio.wait_for(denied, 10)
        done = await asyncio.wait_for(final, 10)
        # Baseline: the same gates, a raw KV put of ``withdrawn`` straight from the consent user.
        raw_denied = gates.expect("deny", key)
        await asyncio.sleep(SETTLE_S)
        raw_start = time.perf_counter()
        await kv.put(kv_key(key, "checkin"), kv_value("withdrawn", 1, "t"))
        raw_end = await asyncio.wait_for(raw_denied, 10)
        if i < WARMUP:
            continue
        times["deny"].append((end - start) * 1000)
        times["commit"].append((commit - start) * 1000)
        times["answered"].append((answered - start) * 1000)
        times["final_from_commit"].append((done - commit) * 1000)
        times["raw"].append((raw_end - raw_start) * 1000)

    await writer.stop()
    await relay.stop()
    gates.stop()
    assert consent.nc is not None
    await consent.nc.close()  # not drain(): nothing is in flight, and drain waits out pull subscriptions
    engine.dispose()
    return times


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
        times = asyncio.run(_propagation(server, data_dir))
        api, bare = _throughput(server, data_dir)
    finally:
        server.stop()
    total, raw = times["deny"], times["raw"]
    p50, p99, raw50, raw99 = _pct(total, 0.5), _pct(total, 0.99), _pct(raw, 0.5), _pct(raw, 0.99)
    a99, c99 = _pct(times["answered"], 0.99), _pct(times["final_from_commit"], 0.99)
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
            notes=(
                f"{same_run}; p50 {p50:.2f} ms, mean {statistics.fmean(total):.2f} ms; its commit came "
                f"{_pct(times['commit'], 0.5):.2f} ms (p50) after the start; from the commit to every gate "
                f"told: p99 {c99:.2f} ms, p50 {_pct(times['final_from_commit'], 0.5):.2f} ms"
            ),
        ),
        Result(
            name="withdrawal -> answered (200) p99",
            value=a99,
            unit="ms",
            baseline_name="raw KV put->watch p99",
            baseline=raw99,
            goal="",
            met=True,
            notes=f"p50 {_pct(times['answered'], 0.5):.2f} ms: commit, then the put stored (read + compare-and-set)",
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
