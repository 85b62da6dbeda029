"""The NATS connection of one service: its own user, its own inbox prefix, its own streams."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError
from pydantic import BaseModel

from shared import topology
from shared.telemetry import inject_headers

log = logging.getLogger("kinwell.bus")

DUPLICATE_WINDOW_S = 120.0


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file`` (None: plain, or the system CAs for tls:// URLs)."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None


class Bus:
    """A service's connection to NATS and JetStream.

    Connects as the service's own NATS user so that the broker, not our code, limits what it may
    publish and read. Tracks connectivity so readiness and the consent gate can fail closed.
    """

    def __init__(
        self,
        service: str,
        url: str,
        user: str | None,
        password: str | None,
        *,
        replicas: int = 1,
        tls_ca_file: Path | None = None,
    ) -> None:
        self.service = service
        self.url = url
        self.user = user
        self.password = password
        self.replicas = replicas
        self.tls_ca_file = tls_ca_file
        self.nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.on_disconnect: list[Callable[[], Awaitable[None]]] = []
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self, *, timeout: float = 10.0) -> None:
        async def disconnected() -> None:
            log.warning("nats disconnected", extra={"service": self.service})
            for cb in self.on_disconnect:
                await cb()

        async def reconnected() -> None:
            log.info("nats reconnected", extra={"service": self.service})
            for cb in self.on_reconnect:
                await cb()

        async def error(exc: Exception) -> None:
            log.warning("nats error", extra={"service": self.service, "error_type": type(exc).__name__})

        self.nc = await nats.connect(
            # A cluster is given as a comma-separated list; the client also learns the others
            # from the server it reaches, and reconnects to any of them.
            servers=self.url.split(","),
            user=self.user,
            password=self.password,
            name=f"kinwell-{self.service}",
            inbox_prefix=f"_INBOX_{self.service}",
            connect_timeout=timeout,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            tls=tls_context(self.tls_ca_file),
        )
        self._js = self.nc.jetstream(timeout=timeout)

    async def wait_for_streams(self) -> None:
        """Check that the streams this service publishes into exist (the provisioner declares them).

        Raises ``nats.js.errors.NotFoundError`` while one is missing; the caller retries.
        """
        for spec in topology.streams_declared_by(self.service):
            await self.js.stream_info(spec.name)

    async def ensure_stream(self, name: str, subjects: list[str]) -> None:
        """Declare an ad-hoc stream (tests and benches, as the ops user; services may not)."""
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=self.replicas,
        )
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            await self.js.update_stream(config)

    async def publish(self, subject: str, payload: bytes, msg_id: str, headers: dict[str, str] | None = None) -> None:
        """Publish to JetStream and wait for its ack; ``msg_id`` de-duplicates retries."""
        hdrs = dict(headers or {})
        hdrs["Nats-Msg-Id"] = msg_id
        await self.js.publish(subject, payload, headers=hdrs)

    async def request(self, subject: str, body: BaseModel, *, timeout: float) -> bytes:
        """Core request/reply with a deadline (raises ``asyncio.TimeoutError`` when it passes)."""
        if self.nc is None:
            raise RuntimeError("bus is not connected")
        try:
            msg = await self.nc.request(
                subject, body.model_dump_json().encode(), timeout=timeout, headers=inject_headers()
            )
        except nats.errors.TimeoutError as exc:
            raise TimeoutError(subject) from exc
        return msg.data

    async def close(self) -> None:
        """Flush what was written and close.

        Callers stop consumers (which finish the message in hand) and the relay first, so nothing
        is in flight here. ``nc.drain()`` is not used: nats-py's pull ``fetch`` never marks its
        messages done, so a drain with a pull subscription always runs into its timeout.
        """
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.flush(), timeout=2)
            except Exception:  # noqa: BLE001 - shutting down regardless
                pass
            await self.nc.close()
        self.nc = None
        self._js = None
