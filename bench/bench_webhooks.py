"""Outbound webhooks: delivery throughput and commit-to-receipt latency to a loopback receiver.

Baseline, measured in the same run against the same receiver: the same number of Standard
Webhooks-signed POSTs sent straight with httpx at the same concurrency (no queue, no database).
The receiver is a bare ASGI app under uvicorn in its own process, recording the first arrival time
of every webhook-id.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, SQLModel
from standardwebhooks import Webhook

from bench.common import Result, sqlite_url
from shared.db import make_engine
from shared.natsserver import free_port
from shared.settings import PlatformSettings
from shared.webhooks import WEBHOOK_TABLES, SecretBox, WebhookSender, WebhookSettings, enqueue
from shared.webhooks.repository import create_subscription

N = 5_000
CONCURRENCY = 32  # the default WebhookSettings.concurrency
RATE = 50  # events/s offered in the latency phase (each event its own transaction)
LATENCY_SECONDS = 10
PAYLOAD = {"insight_id": "i-0000", "org_unit": "eng", "metric": "wellbeing", "period": "2026-W09", "value": 0.42}
ROOT = Path(__file__).resolve().parents[1]

# ---- the receiver (runs in a subprocess: ``uvicorn bench.bench_webhooks:receiver_app``) ----
_RECEIPTS: dict[str, float] = {}


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                _RECEIPTS.setdefault(value.decode(), time.time())
        body = b""
    elif scope["path"] == "/reset":
        _RECEIPTS.clear()
        body = b"{}"
    else:
        body = json.dumps(_RECEIPTS).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "bench.bench_webhooks:receiver_app", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log", "--lifespan", "off"]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/reset", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("receiver did not start")


async def _receipts(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    return dict((await client.get(url + "/dump", timeout=30)).json())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- baseline: signed POSTs straight from httpx ----
async def _direct(url: str, secret: str, n: int) -> float:
    signer = Webhook(secret)
    body = json.dumps({"type": "insight.released", "timestamp": "2026-03-01T00:00:00Z", "data": PAYLOAD})
    sem = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False, timeout=15) as client:

        async def post(i: int) -> None:
            async with sem:
                msg_id, now = f"msg_direct_{i}_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": signer.sign(msg_id, now, body),
                }
                for attempt in (1, 2):  # a keep-alive race is retried, as the sender would
                    try:
                        (await client.post(url + "/hook", content=body, headers=headers)).raise_for_status()
                        return
                    except httpx.TransportError:
                        if attempt == 2:
                            raise

        t = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(n)))
        return n / (time.perf_counter() - t)


async def _direct_latency(url: str, secret: str) -> list[float]:
    """The baseline of the latency phase: at the same offered rate, time from 'ready' to receipt."""
    signer = Webhook(secret)
    body = json.dumps({"type": "insight.released", "timestamp": "2026-03-01T00:00:00Z", "data": PAYLOAD})
    ready: dict[str, float] = {}
    async with httpx.AsyncClient(follow_redirects=False, timeout=15) as client:
        tasks = []
        for i in range(RATE * LATENCY_SECONDS):
            msg_id, now = f"msg_lat_{i}", datetime.now(UTC)
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp()))}
            headers["webhook-signature"] = signer.sign(msg_id, now, body)
            ready[msg_id] = time.time()
            tasks.append(asyncio.create_task(client.post(url + "/hook", content=body, headers=headers)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*tasks)
        got = await _receipts(client, url)
    return [got[k] - t for k, t in ready.items()]


# ---- the sender ----
async def _sender(url: str) -> tuple[float, list[float], str]:
    db = sqlite_url("webhooks")
    engine = make_engine(db)
    SQLModel.metadata.create_all(engine, tables=list(WEBHOOK_TABLES))  # a throwaway bench database
    platform = PlatformSettings(mode="embedded", data_dir=Path(db.split("///", 1)[1]).parent)
    box = SecretBox.from_platform(platform)
    with Session(engine) as s:
        _, secret = create_subscription(s, box, url + "/hook", ["insight.released"], None)
        s.commit()
    settings = WebhookSettings(
        require_https=False,
        allow_networks=["127.0.0.0/8"],
        concurrency=CONCURRENCY,
        batch_size=128,
        poll_interval_seconds=0.05,
    )
    sender = WebhookSender(engine, box, settings)
    sender.start()
    async with httpx.AsyncClient() as control:
        # Throughput: N events committed at once, until every row is settled as delivered.
        with Session(engine) as s:
            for _ in range(N):
                enqueue(s, "insight.released", PAYLOAD)
            s.commit()
        t = time.perf_counter()
        await sender.drain(timeout=600)
        rate = N / (time.perf_counter() - t)
        await control.get(url + "/reset")
        # Latency: one event per transaction at RATE/s; commit time -> first receipt.
        committed: dict[str, float] = {}

        def commit_one() -> None:
            with Session(engine) as s:
                (msg_id,) = enqueue(s, "insight.released", PAYLOAD)
                s.commit()
            committed[msg_id] = time.time()

        for _ in range(RATE * LATENCY_SECONDS):
            await asyncio.to_thread(commit_one)
            await asyncio.sleep(1 / RATE)
        await sender.drain(timeout=120)
        got = await _receipts(control, url)
    await sender.stop()
    engine.dispose()
    return rate, [got[k] - t for k, t in committed.items()], secret


async def _main(url: str) -> list[Result]:
    rate, latencies, secret = await _sender(url)
    async with httpx.AsyncClient() as control:
        await control.get(url + "/reset")
    await _direct(url, secret, 500)  # warm-up
    direct = await _direct(url, secret, N)
    async with httpx.AsyncClient() as control:
        await control.get(url + "/reset")
    direct_latencies = await _direct_latency(url, secret)
    p99, p50 = _pct(latencies, 0.99) * 1000, statistics.median(latencies) * 1000
    base_p99 = _pct(direct_latencies, 0.99) * 1000
    return [
        Result(
            name="webhook delivery",
            value=rate,
            unit="ev/s",
            baseline_name="direct signed POST",
            baseline=direct,
            goal=">= 0.5x",
            met=rate >= 0.5 * direct,
            notes=f"{N:,} events committed at once, {CONCURRENCY} in flight, SQLite queue, loopback receiver",
        ),
        Result(
            name="webhook commit->receipt p99",
            value=p99,
            unit="ms",
            baseline_name="direct POST p99",
            baseline=base_p99,
            goal="< 250 ms",
            met=p99 < 250,
            notes=f"{RATE} ev/s for {LATENCY_SECONDS} s, one transaction each; p50 {p50:.1f} ms",
        ),
    ]


def run() -> list[Result]:
    proc, url = _start_receiver()
    try:
        return asyncio.run(_main(url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
