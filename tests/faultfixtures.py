"""A service as a real OS process (``python -m services.<name>``), to SIGKILL in fault tests.

In-thread services (``tests/servicefixtures.py``) cannot be killed without killing the test;
these can, at any moment or at an armed fault point (``shared/faults.py``). The process gets
its settings from the environment, as under ``kinwell up`` or docker-compose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from shared.faults import ENV as FAULT_ENV
from shared.natsserver import NatsServer, free_port
from shared.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[1]


class ServiceProcess:
    """One service process; ``start`` (optionally with a fault armed), ``kill``, ``start`` again
    on the same port, database and data folder."""

    def __init__(self, name: str, server: NatsServer, platform: PlatformSettings, database_url: str) -> None:
        self.name = name
        self.server = server
        self.platform = platform
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"  # its own listener
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(platform.data_dir) / f"{name}.process.log"

    def env(self, fault: str | None) -> dict[str, str]:
        prefix = f"KINWELL_{self.name.upper()}_"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINWELL_")}
        env.update({
            "KINWELL_MODE": "embedded",
            "KINWELL_DATA_DIR": str(self.platform.data_dir),
            "KINWELL_NATS_URL": self.server.url,
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}PORT": str(self.port),
            f"{prefix}METRICS_HOST": "127.0.0.1",
            f"{prefix}METRICS_PORT": str(self.metrics_port),
            f"{prefix}DATABASE_URL": self.database_url,
            f"{prefix}NATS_USER": self.name,
            f"{prefix}NATS_PASSWORD": self.server.passwords[self.name],
        })  # fmt: skip
        if fault:
            env[FAULT_ENV] = fault
        return env

    def start(self, fault: str | None = None, ready_timeout: float = 40.0, wait_ready: bool = True) -> ServiceProcess:
        """Start the process; unless ``wait_ready`` is false (a fault may fire before it is
        ready), return once ``/readyz`` says ready."""
        Path(self.platform.data_dir).mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], cwd=REPO, env=self.env(fault), stdout=log, stderr=log
        )
        log.close()
        if not wait_ready:
            return self
        deadline = time.monotonic() + ready_timeout
        last: Any = None
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"{self.name} exited: {self.log_tail()}"
                try:
                    last = client.get("/readyz").json()
                    if last.get("ready"):
                        return self
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready: {last} {self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_killed(self, timeout: float) -> int:
        """Until the process has died (an armed fault point fired); its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
