"""The escalation service as a real OS process (``python -m services.escalation``), so a test can
SIGKILL it: no shutdown hook runs, whatever was in memory is lost, only the database remains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.natsserver import NatsServer, free_port
from shared.settings import PlatformSettings


class ServiceProcess:
    def __init__(self, nats: NatsServer, platform: PlatformSettings, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        kw = nats.connect_kwargs("escalation")
        self.env = {
            **os.environ,
            "KINWELL_MODE": "embedded",
            "KINWELL_DATA_DIR": str(platform.data_dir),
            "KINWELL_NATS_URL": nats.url,
            "KINWELL_ESCALATION_PORT": str(self.port),
            "KINWELL_ESCALATION_DATABASE_URL": database_url,
            "KINWELL_ESCALATION_NATS_PASSWORD": kw["password"],
            "KINWELL_ESCALATION_TIMER_POLL_SECONDS": "0.1",
            "KINWELL_WEBHOOK_REQUIRE_HTTPS": "false",
            "KINWELL_WEBHOOK_ALLOW_NETWORKS": json.dumps(["127.0.0.0/8"]),
            "KINWELL_WEBHOOK_POLL_INTERVAL_SECONDS": "0.05",
            "KINWELL_WEBHOOK_RETRY_SCHEDULE": json.dumps([0, 0.2, 0.4, 0.6]),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 40.0) -> ServiceProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.escalation"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if httpx.get(self.url + "/readyz", timeout=2).json().get("ready"):
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("escalation process not ready: " + self.log.read_text()[-2000:])

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
