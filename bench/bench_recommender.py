"""``GET /v1/me/recommendations`` at realistic, open-loop rates, beside a bare FastAPI GET.

The recommender serves 10,000 resources and holds 100,000 personalised profiles (preferences and
two weeks of needs each; every profile's ``personalization`` grant is in the consent bucket, so
the service's gate watches 100,000 keys). Requests come from 5,000 different employees. Both
servers run in their own process (one uvicorn worker each) and are driven by the same open-loop
generator (``bench.load.open_loop``: requests scheduled at fixed times, latency from the intended
send time). Capacity = the highest rate held with p99 < 100 ms. Goal: the recommender's capacity
at least 0.3x the bare GET's.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import Result, nats_server
from bench.load import capacity, free_port, open_loop, serve_app, serve_service
from shared.auth import Role, dev_token
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.db import make_engine, run_migrations
from shared.settings import PlatformSettings

RESOURCES = 10_000
PROFILES = 100_000
CALLERS = 5_000
RATES = [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]
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


def run() -> list[Result]:
    rng = random.Random(7)
    data_dir = Path(tempfile.mkdtemp(prefix="kinwell-bench-rec-"))
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    url = f"sqlite:///{data_dir / 'recommender.db'}"
    subs, names = _seed(url, platform, rng)
    callers = rng.sample(subs, CALLERS)
    tokens = {s: dev_token(platform, s, [Role.employee], ttl_seconds=3600) for s in callers}
    headers = lambda i: {"Authorization": f"Bearer {tokens[callers[i % CALLERS]]}"}  # noqa: E731

    with serve_app("bench.bench_recommender:bare_app", port=free_port()) as bare:
        bare_cap, bare_tried = capacity(lambda r: open_loop(bare, lambda i: "/v1/me/recommendations", rate=r), RATES)

    with nats_server() as server:
        server.provision()
        asyncio.run(_grant_all(server, names))
        started = time.monotonic()
        with serve_service("recommender", server, data_dir, url, ready_timeout=300) as rec:
            print(f"  recommender ready {time.monotonic() - started:.1f} s after start (gate: {PROFILES:,} keys)")
            probe = open_loop(rec, lambda i: "/v1/me/recommendations", rate=20, headers=headers, duration=2)
            body_ok = probe.statuses.get(200, 0) == probe.requests
            rec_cap, rec_tried = capacity(
                lambda r: open_loop(rec, lambda i: "/v1/me/recommendations", rate=r, headers=headers), RATES
            )

    def ladder(tried: list) -> str:
        return "; ".join(f"{rate:.0f}/s p50 {res.p50:.1f} p99 {res.p99:.1f} ms" for rate, res in tried)

    print("  bare:", ladder(bare_tried))
    print("  recommender:", ladder(rec_tried))
    at = next((res for rate, res in rec_tried if rate == rec_cap), None)
    return [
        Result(
            "recommendations capacity (p99<100ms)",
            rec_cap,
            "r/s",
            "bare FastAPI GET",
            bare_cap,
            ">= 0.3x",
            bool(body_ok and bare_cap and rec_cap / bare_cap >= 0.3),
            f"10,000 resources, 100,000 profiles, 5,000 callers; at capacity p50 {at.p50:.1f} ms, p99 {at.p99:.1f} ms"
            if at
            else "not held at the lowest rate",
        )
    ]


if __name__ == "__main__":
    from bench.common import report

    report(run())
