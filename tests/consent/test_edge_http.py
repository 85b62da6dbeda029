"""The HTTP edge of every service (issue 13): headers, authentication before bodies, body sizes.

Against the shared platform (five real services on uvicorn with the production server
configuration), over real sockets where the finding was below HTTP clients (bad lengths).
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from shared.settings import SERVICES
from tests.consent.conftest import new_sub

REQUIRED_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_problem(response: httpx.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == response.status_code
    return body


def raw(port: int, head: bytes, body_chunks: list[bytes] = (), timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client fixes them up); the status, headers and body answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and hung up, as it should on an oversized body
        data = b""
        try:
            while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
                data += chunk
            head_bytes, _, body = data.partition(b"\r\n\r\n")
            lines = head_bytes.decode("latin-1").split("\r\n")
            headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
            while len(body) < int(headers.get("content-length", 0)) and (chunk := sock.recv(65536)):
                body += chunk
        except ConnectionResetError:
            pass
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("name", SERVICES)
def test_every_response_carries_the_security_headers(platform, name):
    svc = platform.services[name]
    auth = platform.auth(new_sub(), "employee")
    paths = {"consent": ["/v1/me/consents", "/v1/me/consents/history"], "checkin": ["/v1/me/checkins"]}
    responses = [
        svc.client.get("/healthz"),
        svc.client.get("/v1/nope"),  # 404
        svc.client.get("/v1/me/consents"),  # 401 (or 404 where the route does not exist)
        *(svc.client.get(path, headers=auth) for path in paths.get(name, [])),
    ]
    for response in responses:
        for header, value in REQUIRED_HEADERS.items():
            assert response.headers.get(header) == value, (name, response.request.url, header)
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "server" not in response.headers


def test_personal_data_is_never_cacheable(platform):
    auth = platform.auth(new_sub(), "employee")
    export = platform.consent.client.get("/v1/me/export", headers=auth)
    assert export.status_code == 200, export.text
    assert export.headers["cache-control"] == "no-store" and export.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("consent", "PUT", "/v1/me/consents/checkin"),
        ("consent", "POST", "/v1/admin/purposes/checkin/versions"),
        ("checkin", "PUT", "/v1/me/nudges"),
        ("checkin", "POST", "/v1/subscriptions"),
        ("checkin", "POST", "/v1/checkins"),
    ],
)
def test_a_malformed_body_without_a_token_is_401_not_400(platform, service, method, path):
    client = platform.services[service].client
    headers = {"content-type": "application/json"}
    response = client.request(method, path, content=b'{"not json', headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    # With a valid token the same body is the client's mistake: 400, not 401.
    headers |= platform.auth(new_sub(), "employee", "admin")
    assert assert_problem(client.request(method, path, content=b'{"not json', headers=headers), 400, 403)


def test_a_chunked_10_mb_body_is_413_problem_json(platform):
    port = platform.consent.settings.port
    auth = platform.auth(new_sub(), "employee")["Authorization"]
    head = (
        f"PUT /v1/me/consents/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
    status, headers, body = raw(port, head, [chunk] * 160 + [b"0\r\n\r\n"])
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 413


@pytest.mark.parametrize("length", [b"-1", b"1" * 24, b"abc", b"1, 2"])
@pytest.mark.parametrize("name", ["consent", "checkin"])
def test_malformed_content_length_is_problem_json(platform, name, length):
    port = platform.services[name].settings.port
    head = b"PUT /v1/me/consents/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    status, headers, body = raw(port, head)
    assert status in (400, 413) and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == status
