"""`kinwell up` as an operator runs it: one command, everything ready, clean stop, clear errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from shared.natsserver import free_port
from shared.settings import DEFAULT_PORTS, SERVICES


def _offset() -> int:
    """A port offset under which all five service ports are free."""
    for _ in range(50):
        base = free_port()
        offset = base - DEFAULT_PORTS["consent"]
        if offset > 0 and all(_free(DEFAULT_PORTS[s] + offset) for s in SERVICES):
            return offset
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _up(tmp_path: Path, offset: int, nats_port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KINWELL_DATA_DIR": str(tmp_path / "data"),
        "KINWELL_NATS_URL": f"nats://127.0.0.1:{nats_port}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--port-offset", str(offset), "--ready-timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_up_starts_everything_ready_and_stops_cleanly_on_sigterm(tmp_path):
    offset, nats_port = _offset(), free_port()
    proc = _up(tmp_path, offset, nats_port)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Kinwell is ready" in line or proc.poll() is not None:
                break
        assert any("Kinwell is ready" in line for line in lines), "".join(lines)
        # Time to ready is measured by bench/bench_up.py, not asserted here (a loaded CI box is slow).
        for name in SERVICES:
            r = httpx.get(f"http://127.0.0.1:{DEFAULT_PORTS[name] + offset}/readyz", timeout=5)
            assert r.status_code == 200 and r.json()["ready"], name
        token = subprocess.run(
            [sys.executable, "-m", "shared.cli", "token", "--sub", "E123", "--role", "employee"],
            env={**os.environ, "KINWELL_DATA_DIR": str(tmp_path / "data")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert token.count(".") == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped." in out
    for name in SERVICES:
        assert _free(DEFAULT_PORTS[name] + offset), f"{name} still listening"
    assert _free(nats_port)
    # Data is kept for the next start.
    assert (tmp_path / "data" / "consent.db").exists() and (tmp_path / "data" / "nats").is_dir()


def test_up_says_which_port_is_taken(tmp_path):
    offset, nats_port = _offset(), free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", DEFAULT_PORTS["checkin"] + offset))
        blocker.listen()
        proc = _up(tmp_path, offset, nats_port)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"checkin ({DEFAULT_PORTS['checkin'] + offset})" in out and "already in use" in out
