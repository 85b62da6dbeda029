"""Check-in ingest at realistic, open-loop load: ``POST /v1/checkins`` at fixed arrival rates.

Requests are sent at 100, 300 and 1,000 per second whatever the server does, and each is timed
from its *intended* send time (``bench.load.open_loop``), so a server that falls behind is charged
for its queue. Beside it, in the same run and at the same rates:

* service: the real check-in app under uvicorn in a child process, with a real nats-server and
  consent bucket: JWT, consent gate, strict validation, scoring and screening, AES-GCM sealing,
  the check-in row + trend row + outbox rows committed durably before each 201; the outbox relay
  publishes meanwhile.
* bare: a FastAPI POST with the same body model, no auth, no database.
* one commit per request: the same service with ``writer_max_batch=1`` (no group commit), which
  says what batching commits buys.

Capacity is the highest rate (of ``CAPACITY_RATES``) held with p99 < 100 ms and every answer 201.
Every 201 of the service is checked to be a stored row after the run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from bench.common import Result, nats_server
from bench.load import LoadResult, ServedUrl, cpu_seconds, free_port, held, open_loop, serve_app, serve_service
from services.checkin.checkins.schemas import CheckinCreate
from shared.auth import Role, dev_token
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.settings import PlatformSettings

EMPLOYEES = 256
REPORT_RATES = (100, 300, 1000)
CAPACITY_RATES = (50, 100, 200, 300, 500, 700, 1000, 1400, 2000)
DURATION = 3.0
WARMUP = 1.0  # bench.load.open_loop's default
OK = frozenset({201})
BODY = json.dumps(
    {
        "answers": {"who5_1": 4, "who5_2": 3, "who5_3": 3, "who5_4": 4, "who5_5": 3, "mood": 4},
        "note": "Busy week with a deadline, slept badly on Tuesday but the weekend helped.",
        "lang": "en",
    }
).encode()


def bare_app() -> FastAPI:
    """Baseline: the same body model, no auth, no database, no bus."""
    app = FastAPI()

    @app.post("/v1/checkins", status_code=201)
    async def post(body: CheckinCreate) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex,
            "who5_index": 4 * sum(v for k, v in body.answers.model_dump().items() if k != "mood"),
        }

    return app


async def _grant(server: Any, pseudonyms: list[str]) -> None:
    import nats

    nc = await nats.connect(**server.connect_kwargs("consent"))
    try:
        kv = await nc.jetstream().key_value("consent")
        for p in pseudonyms:
            for purpose in os.environ.get("BENCH_PURPOSES", "checkin,personalization").split(","):
                await kv.put(kv_key(p, purpose), kv_value("granted", 1, datetime.now(UTC).isoformat()))
    finally:
        await nc.close()


def _service(server: Any, data_dir: Path, db: Path, env: dict[str, str] | None = None) -> Any:
    return serve_service("checkin", server, data_dir, f"sqlite:///{db}", extra_env=env)


def _sweep(url: ServedUrl, tokens: list[str] | None) -> tuple[float, dict[float, LoadResult], float]:
    """Every report rate, and the capacity search, on one server: (capacity, result per rate, the
    server's CPU time per request at 100/s in µs: what it costs whatever else the machine runs)."""

    def headers(i: int) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"} if tokens else {}
        return {**auth, "Content-Type": "application/json"}

    def at(rate: float) -> LoadResult:
        return open_loop(
            url, lambda i: "/v1/checkins", rate=rate, method="POST", body=lambda i: BODY, headers=headers,
            duration=DURATION,
        )  # fmt: skip

    results: dict[float, LoadResult] = {}
    cap, failed, cpu_us = 0.0, False, float("nan")
    for rate in sorted({*REPORT_RATES, *CAPACITY_RATES}):
        if failed and rate not in REPORT_RATES:
            continue  # past the first rate not held, only the report rates are still run
        before = cpu_seconds(url.pid)
        results[rate] = at(rate)
        if rate == 100:
            sent = rate * (DURATION + WARMUP)
            cpu_us = (cpu_seconds(url.pid) - before) / sent * 1e6
        if not failed and held(results[rate], ok=OK):
            cap = rate
        else:
            failed = True
    return cap, results, cpu_us


def _warm(url: str, tokens: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for tok in tokens:  # the first check-in of each employee creates their data key
            headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
            status = client.post("/v1/checkins", content=BODY, headers=headers).status_code
            if status != 201:
                raise RuntimeError(f"warm-up check-in answered {status}")


def _line(name: str, cap: float, results: dict[float, LoadResult], cpu_us: float) -> str:
    cells = [
        f"{rate:,.0f}/s p50 {r.p50:.1f} p99 {r.p99:.1f} p99.9 {r.p999:.1f} ms"
        + ("" if held(r, ok=OK) else f" (not held: {dict(r.statuses)}, errors {r.errors})")
        for rate, r in sorted(results.items())
        if rate in REPORT_RATES
    ]
    return f"{name}: capacity {cap:,.0f}/s, CPU {cpu_us:,.0f} µs/request; " + "; ".join(cells)


def run() -> list[Result]:
    import asyncio

    os.environ.setdefault("KINWELL_LOG_LEVEL", "WARNING")
    work = Path(tempfile.mkdtemp(prefix="kinwell-bench-checkin-"))
    data_dir, db = work / "data", work / "checkin.db"
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    subs = [f"B{i:05d}" for i in range(EMPLOYEES)]
    tokens = [dev_token(platform, s, [Role.employee]) for s in subs]
    server = nats_server()
    server.start()
    server.provision()
    sweeps: dict[str, tuple[float, dict[float, LoadResult], float]] = {}
    try:
        asyncio.run(_grant(server, [pseudonym(platform.secret("pseudonym_key"), platform.tenant, s) for s in subs]))
        with serve_app("bench.bench_checkin:bare_app", port=free_port()) as url:
            sweeps["bare"] = _sweep(url, None)
        with _service(server, data_dir, db) as url:
            _warm(url, tokens)
            sweeps["service"] = _sweep(url, tokens)
        with _service(server, data_dir, db, {"KINWELL_CHECKIN_WRITER_MAX_BATCH": "1"}) as url:
            sweeps["one commit per request"] = _sweep(url, tokens)
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM checkin").fetchone()[0]
    created = EMPLOYEES + sum(
        r.statuses.get(201, 0) for name in ("service", "one commit per request") for r in sweeps[name][1].values()
    )
    durable = stored >= created
    load = os.getloadavg()[0]
    notes = "; ".join(_line(name, *sweep) for name, sweep in sweeps.items())
    notes += f"; every 201 stored: {durable} ({stored:,} rows); load average at the end {load:.1f}"
    (svc_cap, svc, svc_cpu), (bare_cap, bare, bare_cpu) = sweeps["service"], sweeps["bare"]
    one_cap = sweeps["one commit per request"][0]
    p99_300 = svc[300].p99
    return [
        Result("check-in capacity (p99 < 100 ms)", svc_cap, "/s", "bare FastAPI POST", bare_cap,
               "(context)", durable, notes),
        Result("check-in capacity vs a commit per request", svc_cap, "/s", "writer_max_batch=1", one_cap,
               "> 1.5x keeps group commit", svc_cap > 1.5 * one_cap),
        Result("check-in CPU per request (at 100/s)", svc_cpu, "µs", "bare FastAPI POST", bare_cpu, "(context)",
               True),
        Result("check-in p99 at 300/s", p99_300, "ms", "bare p99 at 300/s", bare[300].p99, "< 100 ms",
               p99_300 < 100),
    ]  # fmt: skip
