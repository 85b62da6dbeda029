"""``GET /v1/me/recommendations`` at open-loop rates, beside a bare FastAPI GET in the same run.

The recommender serves 10,000 resources and holds 100,000 personalised profiles (preferences and
two weeks of needs each; every profile's ``personalization`` grant is in the consent bucket, so
the service's gate watches 100,000 keys). Resources and profiles are bulk-inserted into the
service's own tables (its migrations, then Core ``executemany``), which takes seconds. Requests
come from 5,000 different employees. Both servers run in their own process (one uvicorn worker
each) and are driven by the same open-loop generator (``bench.load.open_loop``: requests
scheduled at fixed times, latency from the intended send time, each abandoned after
``TIMEOUT`` seconds and counted as a timeout).

* p50/p99 at ``REALISTIC`` requests/s: a generous peak for 100,000 employees (every one of them
  opening the list within about half an hour).
* Capacity: the highest of ``RATES`` held for ``DURATION`` seconds with p99 < 100 ms, every answer
  200 and no timeout (an exhausted pool answers 503: that rate is not held). The search stops at
  the first rate not held, so one server's sweep lasts at most
  ``len(RATES) * (WARMUP + DURATION + TIMEOUT)`` seconds.

Goal: the recommender's capacity at least 0.3x the bare GET's.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import Result, nats_server
from bench.load import (
    LoadResult,
    ServedUrl,
    capacity,
    cpu_seconds,
    free_port,
    held,
    open_loop,
    serve_app,
    serve_service,
)
from shared.auth import Role, dev_token
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.db import make_engine, run_migrations
from shared.settings import PlatformSettings

RESOURCES = 10_000
PROFILES = 100_000
CALLERS = 5_000
REALISTIC = 50.0
RATES = [50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0]
RATES += [1000.0, 1200.0, 1600.0, 2000.0, 2400.0, 2800.0, 3200.0, 4000.0]
WARMUP, DURATION, TIMEOUT = 1.0, 4.0, 2.0
TOPICS = ["sleep", "stress", "anxiety", "workload", "isolation", "parenting", "low_mood", "energy", "general"]
NEEDS = TOPICS[:-1]
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "recommender" / "migrations"


def bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/me/recommendations")
    def recommendations() -> dict[str, Any]:
        return {"items": []}

    return app


def _seed(url: str, platform: PlatformSettings, rng: random.Random) -> tuple[list[str], list[str]]:
    """Resources and profiles straight into the database; returns the employees' ids."""
    run_migrations(url, MIGRATIONS)
    engine = make_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    now = datetime.now(UTC)
    versions = {
        lang: {"title": f"Title {lang}", "summary": "A resource written for the benchmark."}
        for lang in ("en", "es", "fr")
    }
    resources = [
        {
            "id": f"bench-{i:05d}",
            "kind": rng.choice(["article", "exercise", "video", "course"]),
            "format": rng.choice(["text", "audio", "video", "interactive"]),
            "topics": rng.sample(TOPICS, rng.randint(1, 3)),
            "duration_minutes": rng.randint(2, 60),
            "countries": [],
            "role_families": [],
            "versions": versions,
            "updated_at": now,
        }
        for i in range(RESOURCES - 1)
    ]
    resources.append(
        {
            "id": "counsellor-request",
            "kind": "counsellor",
            "format": "service",
            "topics": ["general"],
            "duration_minutes": 30,
            "countries": [],
            "role_families": [],
            "versions": versions,
            "updated_at": now,
        }
    )
    subs = [f"E{i:06d}" for i in range(PROFILES)]
    key = platform.secret("pseudonym_key")
    names = [pseudonym(key, platform.tenant, s) for s in subs]
    with engine.begin() as conn:
        conn.execute(meta.tables["resource"].insert(), resources)
        conn.execute(meta.tables["catalogue_state"].insert(), [{"id": 1, "version": 1}])
        conn.execute(
            meta.tables["preference"].insert(),
            [
                {
                    "pseudonym": p,
                    "language": rng.choice(["en", "es", "fr"]),
                    "topics": rng.sample(TOPICS, 2),
                    "formats": rng.sample(["text", "audio", "video"], 1),
                    "minutes_available": rng.choice([5, 10, 20, None]),
                    "updated_at": now,
                }
                for p in names
            ],
        )
        conn.execute(
            meta.tables["need_signal"].insert(),
            [
                {
                    "pseudonym": p,
                    "iso_week": week,
                    "needs": rng.sample(NEEDS, rng.randint(0, 3)),
                    "lang": "en",
                    "received_at": now,
                }
                for p in names
                for week in ("2026-W48", "2026-W49")
            ],
        )
    engine.dispose()
    return subs, names


async def _grant_all(server: Any, names: list[str]) -> None:
    import nats

    nc = await nats.connect(**server.connect_kwargs("consent"))
    try:
        js = nc.jetstream()
        value = kv_value("granted", 1, datetime.now(UTC).isoformat())
        for start in range(0, len(names), 2000):
            await asyncio.gather(
                *(js.publish(f"$KV.consent.{kv_key(p, 'personalization')}", value) for p in names[start : start + 2000])
            )
    finally:
        await nc.close()


def _ladder(url: ServedUrl, headers: Any) -> tuple[LoadResult, float, float, list[tuple[float, LoadResult]]]:
    """The realistic rate (with the server's CPU time per request there, in µs: what a request
    costs whatever else the machine runs), then the capacity search (after it, so its overload
    cannot linger)."""

    def at(rate: float) -> LoadResult:
        result = open_loop(
            url, lambda i: "/v1/me/recommendations", rate=rate, headers=headers, duration=DURATION, warmup=WARMUP,
            timeout=TIMEOUT,
        )  # fmt: skip
        print(f"    {rate:,.0f}/s: {result.summary()}", flush=True)
        return result

    before = cpu_seconds(url.pid)
    realistic = at(REALISTIC)
    cpu_us = (cpu_seconds(url.pid) - before) / (REALISTIC * (WARMUP + DURATION)) * 1e6
    cap, tried = capacity(at, RATES)
    return realistic, cpu_us, cap, tried


def _line(tried: list[tuple[float, LoadResult]]) -> str:
    return "; ".join(
        f"{rate:,.0f}/s p50 {r.p50:.1f} p99 {r.p99:.1f} ms"
        + ("" if held(r) else f" (not held: {dict(r.statuses)}, timeouts {r.timeouts}, errors {r.errors})")
        for rate, r in tried
    )


def run() -> list[Result]:
    began = time.monotonic()
    load_before = os.getloadavg()
    rng = random.Random(7)
    data_dir = Path(tempfile.mkdtemp(prefix="kinwell-bench-rec-"))
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    url = f"sqlite:///{data_dir / 'recommender.db'}"
    subs, names = _seed(url, platform, rng)
    print(f"  seeded {RESOURCES:,} resources and {PROFILES:,} profiles in {time.monotonic() - began:.1f} s")
    callers = rng.sample(subs, CALLERS)
    tokens = {s: dev_token(platform, s, [Role.employee], ttl_seconds=3600) for s in callers}
    headers = lambda i: {"Authorization": f"Bearer {tokens[callers[i % CALLERS]]}"}  # noqa: E731

    print("  bare FastAPI GET:")
    with serve_app("bench.bench_recommender:bare_app", port=free_port()) as bare:
        bare_real, bare_cpu, bare_cap, bare_tried = _ladder(bare, lambda i: {})

    with nats_server() as server:
        server.provision()
        asyncio.run(_grant_all(server, names))
        started = time.monotonic()
        with serve_service("recommender", server, data_dir, url, ready_timeout=300) as rec:
            print(f"  recommender ready {time.monotonic() - started:.1f} s after start (gate: {PROFILES:,} keys)")
            # What is measured is the personalised list: check one caller's answer first.
            answer = httpx.get(f"{rec}/v1/me/recommendations", headers=headers(0), timeout=30)
            body = answer.json()
            personalised = answer.status_code == 200 and body["personalised"] and len(body["items"]) == 10
            print(f"  recommender (personalised answer checked: {personalised}):")
            rec_real, rec_cpu, rec_cap, rec_tried = _ladder(rec, headers)

    load_after = os.getloadavg()
    ratio = rec_cap / bare_cap if bare_cap else float("nan")
    print("  bare:", _line(bare_tried))
    print("  recommender:", _line(rec_tried))
    notes = (
        f"10,000 resources, 100,000 profiles, 5,000 callers; at {REALISTIC:.0f}/s: recommender p50 "
        f"{rec_real.p50:.1f} ms, p99 {rec_real.p99:.1f} ms, CPU {rec_cpu:,.0f} µs/request (bare p50 "
        f"{bare_real.p50:.1f}, p99 {bare_real.p99:.1f}, CPU {bare_cpu:,.0f} µs);"
        f" personalised answer checked: {personalised}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; {time.monotonic() - began:.0f} s in all"
    )
    return [
        Result(
            "recommendations capacity (p99<100ms)",
            rec_cap,
            "r/s",
            "bare FastAPI GET",
            bare_cap,
            ">= 0.3x",
            bool(personalised and ratio >= 0.3),
            notes,
        ),
        Result(
            f"recommendations p99 at {REALISTIC:.0f}/s",
            rec_real.p99,
            "ms",
            "bare FastAPI GET p99",
            bare_real.p99,
            "< 100 ms",
            held(rec_real),
        ),
    ]


if __name__ == "__main__":
    from bench.common import report

    report(run())
