"""Imminent-risk check-in -> first page at a loopback receiver, idle and under 300/s of ordinary
check-ins (issue 15's measure).

Real check-in and escalation services, each in its own process, a real nats-server, SQLite. A
probe is one employee's check-in whose note screens as crisis language (severity critical ->
imminent); probes go out every ``PROBE_GAP`` seconds without waiting for each other. For each probe:

* **first page**: from just before the POST is written to the moment the receiver (its own process)
  gets the signed ``escalation.page.triggered`` for that case;
* **plain event** (the baseline, same run): from the same instant to JetStream storing the
  ``checkin.escalation.flagged.v1`` it caused (the stream's own timestamp): how long the platform's
  event path alone takes, before any case, timer or webhook.

The load phase keeps 300 ordinary check-ins/s (other employees, ``checkin`` consent only, nothing
flagged) flowing open-loop from 16 keep-alive connections while the probes run. Goal: p99 of the
first page under load within 2x its idle p99, and under one second end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Result, nats_server
from bench.load import _read_response, _request, free_port, serve_app, serve_service
from shared.auth import Role, dev_token
from shared.consent_gate import kv_key, kv_value
from shared.crypto import pseudonym
from shared.settings import PlatformSettings

PROBES = 40
PROBE_GAP = 0.3
LOAD_RATE = 300
LOAD_CONNECTIONS = 16
LOAD_EMPLOYEES = 200
ORDINARY = json.dumps(
    {"answers": {"who5_1": 4, "who5_2": 4, "who5_3": 3, "who5_4": 4, "who5_5": 4, "mood": 4}, "lang": "en"}
).encode()
CRISIS = json.dumps(
    {
        "answers": {"who5_1": 2, "who5_2": 2, "who5_3": 2, "who5_4": 2, "who5_5": 2, "mood": 1},
        "note": "I want to die",
        "lang": "en",
    }
).encode()

# ---- the receiver (its own process: ``uvicorn --factory bench.bench_escalation:receiver``) ----


def receiver() -> Any:
    arrivals: dict[str, float] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            at = time.time()
            data = json.loads(b"".join(chunks)).get("data", {})
            if "case_ref" in data:
                arrivals.setdefault(data["case_ref"], at)
            body = b""
        else:
            body = json.dumps(arrivals).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


# ---- driving ----


async def _grant(server: Any, grants: dict[str, tuple[str, ...]]) -> None:
    import nats

    nc = await nats.connect(**server.connect_kwargs("consent"))
    try:
        kv = await nc.jetstream().key_value("consent")
        for subject, purposes in grants.items():
            for purpose in purposes:
                await kv.put(kv_key(subject, purpose), kv_value("granted", 1, datetime.now(UTC).isoformat()))
    finally:
        await nc.close()


async def _flag_times(server: Any) -> dict[str, float]:
    """pseudonym -> when JetStream stored its first flag (the stream's timestamp)."""
    import nats

    nc = await nats.connect(**server.connect_kwargs("ops"))
    out: dict[str, float] = {}
    try:
        sub = await nc.jetstream().subscribe("checkin.escalation.>", ordered_consumer=True)
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except Exception:  # noqa: BLE001 - caught up
                break
            body = json.loads(msg.data)
            out.setdefault(body["pseudonym"], msg.metadata.timestamp.timestamp())
    finally:
        await nc.close()
    return out


async def _post(host_port: str, token: str, body: bytes, conn: Any = None) -> Any:
    host, port = host_port.split(":")
    reader, writer = conn or await asyncio.open_connection(host, int(port))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    writer.write(_request("POST", "/v1/checkins", host_port, body, headers))
    status = await _read_response(reader)
    return status, (reader, writer)


async def _run(checkin: str, probe_tokens: list[str], load_tokens: list[str], load: bool) -> tuple[list[float], int]:
    host_port = checkin.split("://", 1)[1]
    sent: list[float] = []
    done = asyncio.Event()
    ordinary = 0

    async def loader(k: int) -> None:
        nonlocal ordinary
        interval = LOAD_CONNECTIONS / LOAD_RATE
        conn = None
        next_at = time.perf_counter() + k * interval / LOAD_CONNECTIONS
        i = k
        while not done.is_set():
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            status, conn = await _post(host_port, load_tokens[i % len(load_tokens)], ORDINARY, conn)
            ordinary += status == 201
            i += LOAD_CONNECTIONS
            next_at += interval  # open loop: a late send does not push the schedule back

    async def probe(token: str) -> None:
        sent.append(time.time())
        status, (_, writer) = await _post(host_port, token, CRISIS)
        writer.close()
        if status != 201:
            raise RuntimeError(f"crisis check-in answered {status}")

    loaders = [asyncio.create_task(loader(k)) for k in range(LOAD_CONNECTIONS)] if load else []
    if load:
        await asyncio.sleep(2.0)  # the load reaches its rate before the first probe
    probes = []
    for token in probe_tokens:
        probes.append(asyncio.create_task(probe(token)))
        await asyncio.sleep(PROBE_GAP)
    await asyncio.gather(*probes)
    await asyncio.sleep(1.5)  # the last pages arrive while the load goes on
    done.set()
    await asyncio.gather(*loaders)
    return sent, ordinary


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run() -> list[Result]:
    os.environ.setdefault("KINWELL_LOG_LEVEL", "WARNING")
    work = Path(tempfile.mkdtemp(prefix="kinwell-bench-escalation-"))
    data_dir = work / "data"
    platform = PlatformSettings(mode="embedded", data_dir=data_dir)
    key, tenant = platform.secret("pseudonym_key"), platform.tenant
    phases = {"idle": [f"PI{i:04d}" for i in range(PROBES)], "load": [f"PL{i:04d}" for i in range(PROBES)]}
    loaders = [f"BL{i:04d}" for i in range(LOAD_EMPLOYEES)]
    token = {s: dev_token(platform, s, [Role.employee]) for s in [*loaders, *phases["idle"], *phases["load"]]}
    pseudo = {s: pseudonym(key, tenant, s) for s in token}
    os.environ.update(
        {
            "KINWELL_WEBHOOK_REQUIRE_HTTPS": "false",
            "KINWELL_WEBHOOK_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        }
    )
    server = nats_server()
    server.start()
    server.provision()
    results: dict[str, dict[str, list[float]]] = {}
    ordinary_rate = 0.0
    try:
        grants = {pseudo[s]: ("checkin",) for s in loaders}
        grants |= {pseudo[s]: ("checkin", "escalation") for p in phases.values() for s in p}
        asyncio.run(_grant(server, grants))
        esc_db = work / "escalation.db"
        rport = free_port()
        with (
            serve_app("bench.bench_escalation:receiver", port=rport) as receiver_url,
            serve_service("checkin", server, data_dir, f"sqlite:///{work / 'checkin.db'}") as checkin,
            serve_service("escalation", server, data_dir, f"sqlite:///{esc_db}") as escalation,
        ):
            admin = {"Authorization": f"Bearer {dev_token(platform, 'ops', [Role.admin])}"}
            body = {"url": receiver_url + "/pager", "event_types": ["escalation.page.triggered"]}
            httpx.post(escalation + "/v1/subscriptions", json=body, headers=admin).raise_for_status()
            with httpx.Client(base_url=checkin, timeout=30) as client:  # data keys created before timing
                for s in token:
                    headers = {"Authorization": f"Bearer {token[s]}", "Content-Type": "application/json"}
                    if client.post("/v1/checkins", content=ORDINARY, headers=headers).status_code != 201:
                        raise RuntimeError("warm-up check-in refused")
            sent: dict[str, list[float]] = {}
            for phase, subs in phases.items():
                start = time.time()
                sent[phase], ordinary = asyncio.run(
                    _run(checkin, [token[s] for s in subs], [token[s] for s in loaders], phase == "load")
                )
                if phase == "load":
                    ordinary_rate = ordinary / (time.time() - start - 0.0)
            time.sleep(1.0)
            arrivals = httpx.get(receiver_url + "/arrivals").json()
            flagged = asyncio.run(_flag_times(server))
            with sqlite3.connect(esc_db) as conn:
                case_of = dict(conn.execute("SELECT pseudonym, id FROM escalation_case").fetchall())
        for phase, subs in phases.items():
            pages, events = [], []
            for s, t0 in zip(subs, sent[phase], strict=True):
                case = case_of.get(pseudo[s])
                if case is None or case not in arrivals or pseudo[s] not in flagged:
                    raise RuntimeError(f"probe of {phase} was not paged")
                pages.append((arrivals[case] - t0) * 1000)
                events.append((flagged[pseudo[s]] - t0) * 1000)
            results[phase] = {"page": pages, "event": events}
    finally:
        server.stop()
    idle, load = results["idle"], results["load"]
    notes = (
        f"{PROBES} probes per phase, one every {PROBE_GAP}s; load: {ordinary_rate:.0f} ordinary check-ins/s "
        f"(target {LOAD_RATE}); page p50 idle {statistics.median(idle['page']):.0f} ms / load "
        f"{statistics.median(load['page']):.0f} ms; plain event p50 idle {statistics.median(idle['event']):.0f} / "
        f"load {statistics.median(load['event']):.0f} ms, p99 idle {_pct(idle['event'], 0.99):.0f} / "
        f"load {_pct(load['event'], 0.99):.0f} ms"
    )
    idle99, load99 = _pct(idle["page"], 0.99), _pct(load["page"], 0.99)
    return [
        Result("crisis check-in -> first page p99, under load", load99, "ms", "same, idle", idle99,
               "<= 2x idle and < 1000 ms", load99 <= 2 * idle99 and load99 < 1000, notes),
        Result("crisis check-in -> first page p50, idle", statistics.median(idle["page"]), "ms",
               "plain event p50, idle", statistics.median(idle["event"]), "", True),
        Result("crisis check-in -> first page p99, idle", idle99, "ms", "plain event p99, idle",
               _pct(idle["event"], 0.99), "< 1000 ms", idle99 < 1000),
        Result("crisis check-in -> first page p99, load", load99, "ms", "plain event p99, load",
               _pct(load["event"], 0.99), "< 1000 ms", load99 < 1000),
    ]  # fmt: skip
