"""A small HTTP/1.1 load generator and a way to serve an app in its own process.

The generator speaks raw keep-alive HTTP/1.1 over asyncio streams (no client library in the hot
loop), so on this 2-core machine most of the CPU goes to the server under test. Every benchmark
measures its baseline with the same generator in the same run, so ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

KEEPALIVE_EXPIRY = 4.0  # seconds; uvicorn's keep-alive timeout is 5 (httpx's default expiry is 5 too)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    timeouts: int = 0  # open_loop: measured requests not answered within its timeout

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    @property
    def p999(self) -> float:
        return self.pct(0.999)

    def summary(self) -> str:
        return (
            f"{self.rps:,.0f} req/s, p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, "
            f"statuses {dict(self.statuses)}, errors {self.errors}, timeouts {self.timeouts}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedUrl(str):
    """A served app's base URL, with the process id of its server (to read its CPU time)."""

    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve_app(factory: str, *, port: int, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[ServedUrl]:
    """Run ``uvicorn --factory module:function`` in a child process; yields its base URL."""
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{factory} did not start") from None
                time.sleep(0.05)
        url = ServedUrl(f"http://127.0.0.1:{port}")
        url.pid = proc.pid
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _request(method: str, path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _hammer(
    url: str,
    method: str,
    path: str,
    body: Callable[[int], bytes],
    headers: Callable[[int], dict[str, str]],
    concurrency: int,
    duration: float,
    warmup: float,
) -> LoadResult:
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    counter = iter(range(1 << 62))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                i = next(counter)
                writer.write(_request(method, path, host_port, body(i), headers(i)))
                t0 = time.perf_counter()
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append((t1 - t0) * 1000)
                    statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(latencies), duration, latencies, statuses, errors)


def hammer(
    url: str,
    method: str,
    path: str,
    *,
    body: Callable[[int], bytes] = lambda i: b"",
    headers: Callable[[int], dict[str, str]] = lambda i: {},
    concurrency: int = 32,
    duration: float = 5.0,
    warmup: float = 1.0,
) -> LoadResult:
    """Send requests from ``concurrency`` keep-alive connections for ``warmup + duration`` seconds.

    Only requests that start after the warm-up and finish before the end are counted.
    """
    return asyncio.run(_hammer(url, method, path, body, headers, concurrency, duration, warmup))


@contextmanager
def serve_service(
    name: str,
    nats: Any,
    data_dir: Path,
    database_url: str,
    ready_timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[ServedUrl]:
    """Run one Kinwell service in its own process against ``nats``; yields its URL once ready."""
    port = free_port()
    prefix = f"KINWELL_{name.upper()}_"
    env = {
        "KINWELL_MODE": "embedded",
        "KINWELL_DATA_DIR": str(data_dir),
        "KINWELL_NATS_URL": nats.url,
        "KINWELL_LOG_LEVEL": "WARNING",
        prefix + "PORT": str(port),
        prefix + "DATABASE_URL": database_url,
        prefix + "NATS_PASSWORD": nats.connect_kwargs(name)["password"],
        # The benches measure the write path at full load from one address, not the abuse limits.
        prefix + "RATE_LIMIT_PER_PRINCIPAL": "",
        prefix + "RATE_LIMIT_PER_SOURCE": "",
        **(extra_env or {}),
    }
    with serve_app(f"services.{name}.app:create_app", port=port, env=env) as url:
        deadline = time.monotonic() + ready_timeout
        while not httpx.get(f"{url}/readyz").json().get("ready"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not become ready")
            time.sleep(0.1)
        yield url


async def _open_loop(
    url: str,
    method: Callable[[int], str],
    path: Callable[[int], str],
    body: Callable[[int], bytes],
    headers: Callable[[int], dict[str, str]],
    rate: float,
    duration: float,
    warmup: float,
    max_connections: int,
    timeout: float,
) -> LoadResult:
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    # Idle keep-alive connections, with when each was parked: one idle longer than
    # ``KEEPALIVE_EXPIRY`` is not reused, as uvicorn closes it after 5 s (a reuse would fail).
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    slots = asyncio.Semaphore(max_connections)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = timeouts = 0
    start = time.perf_counter() + 0.05
    measure_from = start + warmup
    total = int(rate * (warmup + duration))

    async def exchange(i: int, held_conn: list[asyncio.StreamWriter]) -> int:
        async with slots:  # beyond max_connections a request waits, and its wait is counted
            while idle and time.perf_counter() - idle[-1][2] > KEEPALIVE_EXPIRY:
                idle.pop()[1].close()
            if idle:
                reader, writer, _ = idle.pop()
            else:
                reader, writer = await asyncio.open_connection(host, int(port))
            held_conn.append(writer)
            writer.write(_request(method(i), path(i), host_port, body(i), headers(i)))
            status = await _read_response(reader)
            held_conn.clear()
            idle.append((reader, writer, time.perf_counter()))
            return status

    async def one(i: int, intended: float) -> None:
        nonlocal errors, timeouts
        held_conn: list[asyncio.StreamWriter] = []
        try:
            # The timeout runs from the intended send time: time spent queued here counts.
            status = await asyncio.wait_for(exchange(i, held_conn), intended + timeout - time.perf_counter())
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
            for writer in held_conn:  # a connection with an answer still owed is not reused
                writer.close()
            if isinstance(exc, TimeoutError):
                timeouts += intended >= measure_from
            else:
                errors += 1
            return
        if intended >= measure_from:
            latencies.append((time.perf_counter() - intended) * 1000)
            statuses[status] += 1

    tasks = []
    for i in range(total):
        intended = start + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, intended)))
    await asyncio.gather(*tasks)
    for _, writer, _ in idle:
        writer.close()
    return LoadResult(len(latencies), duration, latencies, statuses, errors, timeouts)


def open_loop(
    url: str,
    path: Callable[[int], str],
    *,
    rate: float,
    method: str | Callable[[int], str] = "GET",
    body: Callable[[int], bytes] = lambda i: b"",
    headers: Callable[[int], dict[str, str]] = lambda i: {},
    duration: float = 4.0,
    warmup: float = 1.0,
    max_connections: int = 256,
    timeout: float = 2.0,
) -> LoadResult:
    """Requests sent at a fixed ``rate`` whatever the server does (open loop), each timed from the
    moment it was *scheduled*: a server that falls behind is charged for the queue it built
    (coordinated omission corrected), unlike :func:`hammer`, which waits for each answer.

    A request not answered ``timeout`` seconds after its intended send time is abandoned (its
    connection closed) and counted in ``timeouts``, so one run lasts at most
    ``warmup + duration + timeout`` seconds however far the server falls behind."""

    def method_of(i: int) -> str:  # may vary per request, as path, body and headers do
        return method(i) if callable(method) else method

    # The generator's own pauses would be charged to the server: the objects the caller holds
    # (a bench's seeded data) are kept out of the generator's garbage collections.
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(
            _open_loop(url, method_of, path, body, headers, rate, duration, warmup, max_connections, timeout)
        )
    finally:
        gc.unfreeze()


def held(result: LoadResult, p99_ms: float = 100.0, ok: frozenset[int] = frozenset({200})) -> bool:
    """Whether a run held its rate: no errors or timeouts, only ``ok`` statuses (a 503 of an
    exhausted pool is a failure), p99 under ``p99_ms``."""
    return result.errors == 0 and result.timeouts == 0 and set(result.statuses) <= ok and result.p99 < p99_ms


def capacity(
    run: Callable[[float], LoadResult], rates: list[float], p99_ms: float = 100.0, ok: frozenset[int] = frozenset({200})
) -> tuple[float, list]:
    """The highest of ``rates`` held with p99 under ``p99_ms`` and every request answered 2xx.
    Stops at the first rate that is not held; returns it with every (rate, result) tried."""
    held_rate, tried = 0.0, []
    for rate in rates:
        result = run(rate)
        tried.append((rate, result))
        if not held(result, p99_ms, ok):
            break
        held_rate = rate
    return held_rate, tried
