"""Pytest fixtures for a real, private NATS server running Kinwell's config and permissions.

Tests are plain sync functions that ``asyncio.run`` an async body, so connections belong to the
body's event loop and must be closed before that loop ends; :class:`NatsConnect` does that.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from shared.natsserver import USERS, NatsServer

__all__ = ["ErrorLog", "NatsConnect", "flushed", "nats_connect", "nats_server"]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One ``nats-server`` per test session: free port, temp store, random password per user.

    It runs ``deploy/nats/nats.conf`` with the committed ``auth.conf``, so tests see exactly
    the permissions production enforces. State is shared across the session: use unique
    subjects / keys. Streams and the KV bucket are provisioned, as ``kinwell up`` does.
    """
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    with NatsServer(tmp_path_factory.mktemp("nats"), passwords=passwords) as server:
        server.provision()
        yield server


async def flushed(nc: Client) -> None:
    """Return once the server has processed everything ``nc`` sent so far.

    Use this, not a bare ``nc.flush()``, after ``subscribe`` or before checking for permission
    errors: nats-py 2.16 writes flush()'s PING straight to the socket, ahead of SUB/PUB commands
    still queued for its flusher task, so the PONG can come back before the server has seen them
    (in tests: ~5% NoRespondersError, permission errors arriving "late"). The first flush gets
    the queue written; the second PING then follows it.
    """
    await nc.flush()
    await nc.flush()


class ErrorLog:
    """Records a client's async errors (e.g. permission violations): ``error_cb=log.record``.

    The server reports a denied publish or subscribe asynchronously (``-ERR``), never as the
    result of the call: check after ``await flushed(nc)`` with ``log.has('publish to "x"')``,
    or wait with ``await log.wait_for('publish to "x"')``.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._changed = asyncio.Event()

    async def record(self, exc: Exception) -> None:
        """The ``error_cb`` (nats-py insists on a coroutine function, not a callable object)."""
        self.errors.append(str(exc))
        self._changed.set()

    def has(self, fragment: str) -> bool:
        """True if an error recorded so far contains ``fragment`` (case-insensitive)."""
        return any(fragment.lower() in e.lower() for e in self.errors)

    async def wait_for(self, fragment: str, timeout: float = 2.0) -> str:
        """The first error containing ``fragment``; ``TimeoutError`` if none arrives in time."""
        async with asyncio.timeout(timeout):
            while True:
                for e in self.errors:
                    if fragment.lower() in e.lower():
                        return e
                self._changed.clear()
                await self._changed.wait()


class NatsConnect:
    """Opens NATS connections as a given user; closes every one it opened.

    Inside the ``asyncio.run`` body::

        nc = await nats_connect("checkin")                      # connected as checkin
        nc = await nats_connect("aggregator", error_cb=log.record)  # extra nats.connect kwargs
        kwargs = nats_connect.kwargs("consent")                 # or connect yourself

    Each connection is closed when the ``asyncio.run`` that opened it ends, even if the body
    raised: a guard task on that loop is cancelled at loop shutdown and closes the client while
    the loop still runs. ``await nats_connect.close_all()`` closes them earlier. Connections made
    yourself from :meth:`kwargs` are yours to close.
    """

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.opened: list[Client] = []
        # Strong references: the loop only keeps weak ones, and a guard collected mid-test would
        # close its connection under the test's feet.
        self._guards: set[asyncio.Task[None]] = set()

    def kwargs(self, service: str) -> dict[str, Any]:
        """``nats.connect`` keyword arguments for ``service`` (or ``"ops"``)."""
        return self.server.connect_kwargs(service)

    async def __call__(self, service: str, **overrides: Any) -> Client:
        nc = await nats.connect(**{**self.kwargs(service), **overrides})
        self.opened.append(nc)
        guard = asyncio.get_running_loop().create_task(self._close_when_loop_ends(nc))
        self._guards.add(guard)
        guard.add_done_callback(self._guards.discard)
        return nc

    @staticmethod
    async def _close_when_loop_ends(nc: Client) -> None:
        try:
            await asyncio.Event().wait()  # until asyncio.run cancels leftover tasks
        finally:
            if not nc.is_closed:
                await nc.close()

    async def close_all(self) -> None:
        """Close every connection opened so far on the running loop."""
        for nc in self.opened:
            if not nc.is_closed:
                await nc.close()


@pytest.fixture
def nats_connect(nats_server: NatsServer) -> Iterator[NatsConnect]:
    """Per-test :class:`NatsConnect` against the session's ``nats_server``.

    Usage: ``nc = await nats_connect("checkin")`` inside the test's ``asyncio.run`` body; the
    connection is closed when that ``asyncio.run`` returns (see :class:`NatsConnect`).
    """
    helper = NatsConnect(nats_server)
    yield helper
    leaked = [nc for nc in helper.opened if not nc.is_closed]
    assert not leaked, f"{len(leaked)} NATS connection(s) outlived their event loop"
