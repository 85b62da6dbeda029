"""Slow clients, disconnects and the connection limit (issue 13 item 3), over real sockets.

A real service under the production server configuration (shared.server) with short timeouts:
clients that send half their headers or half their body are answered 408 and hung up on, a
client that disconnects mid-body is no error in the logs, and connections beyond the limit are
refused at once while the service keeps answering.
"""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from tests.servicefixtures import bearer

LIMITS = {"http_header_timeout_seconds": 0.5, "http_body_timeout_seconds": 0.5, "http_max_connections": 40}


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes (or the timeout): the status, headers and body it sent."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return (int(lines[0].split()[1]) if lines[0] else 0), headers, body


@pytest.fixture
def svc(start_service):
    return start_service("checkin", **LIMITS)


def test_incomplete_headers_are_timed_out_with_408(svc):
    port = svc.settings.port
    held = []
    for _ in range(30):  # fewer than the connection limit: each is answered by the timeout
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(sock)
    started = time.monotonic()
    try:
        for sock in held:
            status, headers, body = read_response(sock)
            assert status == 408 and headers["content-type"] == "application/problem+json"
            assert json.loads(body)["status"] == 408
    finally:
        for sock in held:
            sock.close()
    assert time.monotonic() - started < 4.0  # 0.5 s each, in parallel; not the 5 s read timeout
    assert svc.client.get("/healthz").status_code == 200


def test_a_body_that_stops_short_is_timed_out_and_not_an_error(svc, token, caplog):
    caplog.set_level(logging.INFO)
    auth = bearer(token("E-slow", "integration"))["Authorization"]
    with socket.create_connection(("127.0.0.1", svc.settings.port)) as sock:
        sock.sendall(
            b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: " + auth.encode() + b'\r\nContent-Length: 1000\r\n\r\n{"records": ['
        )
        status, headers, body = read_response(sock)
    assert status == 408 and headers["content-type"] == "application/problem+json"
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert svc.client.get("/healthz").status_code == 200


def test_a_client_that_disconnects_mid_body_is_not_an_error(svc, token, caplog):
    caplog.set_level(logging.INFO)
    auth = bearer(token("E-gone", "integration"))["Authorization"]
    with socket.create_connection(("127.0.0.1", svc.settings.port)) as sock:
        sock.sendall(
            b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: " + auth.encode() + b'\r\nContent-Length: 1000\r\n\r\n{"records": ['
        )
        time.sleep(0.1)  # the route is reading the body
    time.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert any(getattr(r, "outcome", None) == "disconnected" for r in caplog.records)


def test_connections_beyond_the_limit_are_refused_at_once(start_service):
    # Header timeout long enough that the held connections outlive their opening on a loaded
    # machine (at 0.5 s they could time out first and free their places).
    svc = start_service("checkin", **{**LIMITS, "http_header_timeout_seconds": 10})
    port, limit = svc.settings.port, LIMITS["http_max_connections"]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(limit)]
    try:
        deadline = time.monotonic() + 10
        while len(svc._server.server_state.connections) < limit and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.02)  # until the server has accepted every held connection
        with socket.create_connection(("127.0.0.1", port)) as extra:
            status, headers, _ = read_response(extra, timeout=2.0)
        assert status == 503 and headers["content-type"] == "application/problem+json"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.1)
    assert svc.client.get("/healthz").status_code == 200
