"""`kinwell up`: seconds from the command to every service ready, beside nats-server alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from bench.common import Result, nats_server
from shared.natsserver import free_port
from shared.settings import DEFAULT_PORTS, SERVICES


def _offset() -> int:
    base = free_port()
    return max(1, base - DEFAULT_PORTS["consent"] - len(SERVICES))


def run() -> list[Result]:
    server = nats_server()
    t = time.perf_counter()
    server.start()
    nats_alone = time.perf_counter() - t
    server.stop()

    data = tempfile.mkdtemp(prefix="kinwell-bench-up-")
    env = {**os.environ, "KINWELL_DATA_DIR": data, "KINWELL_NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--port-offset", str(_offset())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = float("nan")
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Kinwell is ready" in line:
            ready = time.perf_counter() - t
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    return [
        Result(
            name="kinwell up to ready",
            value=ready,
            unit="s",
            baseline_name="nats-server alone",
            baseline=nats_alone,
            goal="all five ready < 20 s",
            met=ready < 20,
            notes="fresh data folder: migrations, provisioning, five uvicorn processes, every /readyz green",
        )
    ]
