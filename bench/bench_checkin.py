"""Check-in ingest: ``POST /v1/checkins`` on the real service, beside two baselines in the same run.

* service: the real check-in app under uvicorn in a child process, with a real nats-server and
  consent bucket: JWT, consent gate, strict validation, scoring and screening, AES-GCM sealing,
  the check-in row + trend row + outbox row committed durably (group commit, SQLite
  ``synchronous=FULL``) before each 201; the outbox relay publishes meanwhile.
* bare: a FastAPI POST with the same body model, no auth, no database.
* naive: FastAPI + SQLModel, a session and a commit per request (sync endpoint, pooled SQLite).

Variants run interleaved, twice, and each keeps its best run (the machine is shared). Every 201
of the service is checked to be a stored row after the run.
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
from sqlmodel import Field, Session, SQLModel, create_engine

from bench.common import Result, nats_server
from bench.load import LoadResult, free_port, hammer, serve_app, serve_service
from services.checkin.schemas import CheckinCreate
from shared.auth import Role, dev_token
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.settings import PlatformSettings

EMPLOYEES = 256
CONCURRENCY = 64
DURATION = 5.0
ROUNDS = 2
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


class NaiveCheckin(SQLModel, table=True):
    __tablename__ = "naive_checkin"

    id: str = Field(primary_key=True)
    body: str
    created_at: datetime


def naive_app() -> FastAPI:
    """Baseline: FastAPI + SQLModel, one session and one commit per request."""
    engine = create_engine(os.environ["BENCH_NAIVE_DB"], connect_args={"check_same_thread": False})
    SQLModel.metadata.create_all(engine, tables=[NaiveCheckin.__table__])  # type: ignore[list-item]
    app = FastAPI()

    @app.post("/v1/checkins", status_code=201)
    def post(body: CheckinCreate) -> dict[str, Any]:
        with Session(engine) as session:
            row = NaiveCheckin(id=uuid.uuid4().hex, body=body.model_dump_json(), created_at=datetime.now(UTC))
            session.add(row)
            session.commit()
            return {"id": row.id}

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


def _service(server: Any, data_dir: Path, db: Path) -> Any:
    return serve_service("checkin", server, data_dir, f"sqlite:///{db}")


def _load(url: str, tokens: list[str]) -> LoadResult:
    def headers(i: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Content-Type": "application/json"}

    return hammer(
        url, "POST", "/v1/checkins", body=lambda i: BODY, headers=headers, concurrency=CONCURRENCY, duration=DURATION
    )


def _created(result: LoadResult) -> float:
    return result.statuses.get(201, 0) / result.seconds if result.seconds else 0.0


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
    best: dict[str, LoadResult] = {}
    created_total = 0
    try:
        asyncio.run(_grant(server, [pseudonym(platform.secret("pseudonym_key"), platform.tenant, s) for s in subs]))
        for _ in range(ROUNDS):
            with serve_app("bench.bench_checkin:bare_app", port=free_port()) as url:
                runs = {"bare": _load(url, tokens)}
            with _service(server, data_dir, db) as url:
                with httpx.Client(base_url=url, timeout=30) as client:
                    for tok in tokens:  # first check-in of each employee creates their data key
                        headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
                        status = client.post("/v1/checkins", content=BODY, headers=headers).status_code
                        if status != 201:
                            raise RuntimeError(f"warm-up check-in answered {status}")
                runs["service"] = _load(url, tokens)
            naive_db = work / f"naive-{uuid.uuid4().hex[:6]}.db"
            with serve_app(
                "bench.bench_checkin:naive_app", port=free_port(), env={"BENCH_NAIVE_DB": f"sqlite:///{naive_db}"}
            ) as url:
                runs["naive"] = _load(url, tokens)
            created_total += runs["service"].statuses.get(201, 0)
            for name, result in runs.items():
                if name not in best or _created(result) > _created(best[name]):
                    best[name] = result
    finally:
        server.stop()
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM checkin").fetchone()[0]
    svc, bare, naive = best["service"], best["bare"], best["naive"]
    durable = stored >= created_total + EMPLOYEES * ROUNDS
    notes = (
        f"{CONCURRENCY} keep-alive connections, {EMPLOYEES} employees, {DURATION:.0f} s x {ROUNDS} interleaved rounds "
        f"(best kept); service p50 {svc.p50:.1f} / p99 {svc.p99:.1f} ms, "
        f"bare p50 {bare.p50:.1f} / p99 {bare.p99:.1f} ms, "
        f"naive p50 {naive.p50:.1f} / p99 {naive.p99:.1f} ms; statuses {dict(svc.statuses)}; "
        f"every 201 stored: {durable} ({stored:,} rows)"
    )
    return [
        Result("check-in ingest vs bare POST", _created(svc), "req/s", "bare FastAPI POST", _created(bare),
               ">= 0.5x", _created(svc) >= 0.5 * _created(bare) and durable, notes),
        Result("check-in ingest vs naive commit", _created(svc), "req/s", "FastAPI+SQLModel commit/request",
               _created(naive), ">= 5x", _created(svc) >= 5 * _created(naive) and durable),
        Result("check-in ingest p99", svc.p99, "ms", "service p50", svc.p50, "< 10x p50", svc.p99 < 10 * svc.p50),
    ]  # fmt: skip
