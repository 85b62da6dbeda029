"""A slow network path on loopback: a TCP proxy that delays what clients send by a fixed time.

Put it between a service and nats-server to make that service's publishes arrive late (a
congested link, a paused VM), without touching the service's code. Bytes keep their order.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class DelayProxy:
    """Accepts on a free loopback port and forwards to ``upstream``, each client->server chunk
    held back ``delay`` seconds; server->client is forwarded at once."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._closed = threading.Event()

    def start(self) -> DelayProxy:
        threading.Thread(target=self._accept, daemon=True, name="delay-proxy").start()
        return self

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            held: deque[tuple[float, bytes]] = deque()
            ready = threading.Condition()
            threading.Thread(target=self._read_into, args=(client, held, ready), daemon=True).start()
            threading.Thread(target=self._send_when_due, args=(held, ready, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _read_into(self, src: socket.socket, held: deque[tuple[float, bytes]], ready: threading.Condition) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with ready:
                held.append((time.monotonic() + self.delay, data))
                ready.notify()
            if not data:
                return

    def _send_when_due(self, held: deque[tuple[float, bytes]], ready: threading.Condition, dst: socket.socket) -> None:
        while True:
            with ready:
                while not held:
                    ready.wait()
                due, data = held.popleft()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return


@contextmanager
def delayed(upstream_url: str, delay: float) -> Iterator[str]:
    """``nats://host:port`` -> the URL of a proxy in front of it that delays client traffic."""
    host, port = upstream_url.rsplit("//", 1)[1].rsplit(":", 1)
    proxy = DelayProxy((host, int(port)), delay).start()
    try:
        yield f"nats://127.0.0.1:{proxy.port}"
    finally:
        proxy.close()
