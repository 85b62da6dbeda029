"""All five services over one real nats-server: ready, healthy, problem+json everywhere."""

from __future__ import annotations

import pytest

from shared.settings import SERVICES


@pytest.fixture
def platform(start_service):
    return {name: start_service(name) for name in SERVICES}


def test_every_service_becomes_ready_with_all_checks(platform):
    for name, svc in platform.items():
        body = svc.client.get("/readyz").json()
        assert body["ready"] is True, name
        assert body["checks"]["database"] and body["checks"]["nats"] and body["checks"]["consumers"]
        if name in ("checkin", "recommender", "escalation"):
            assert body["checks"]["consent_projection"] is True
        assert svc.client.get("/healthz").json() == {"status": "ok"}
        # Metrics are on the service's own listener, never on the (ingress-routed) service port.
        assert "kinwell_http_requests_total" in svc.metrics()
        assert svc.client.get("/metrics").status_code == 404


def test_unknown_route_and_wrong_method_are_problem_json(platform):
    svc = platform["checkin"]
    r = svc.client.get("/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404
    r = svc.client.delete("/healthz")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413_problem_json(platform):
    r = platform["consent"].client.post("/v1/anything", content=b"x" * (70 * 1024))
    assert r.status_code == 413 and r.json()["type"].endswith("payload-too-large")


def test_readiness_fails_closed_when_nats_goes_away(platform, service_nats):
    svc = platform["checkin"]
    service_nats.stop()
    import time

    deadline = time.monotonic() + 10
    while svc.client.get("/readyz").status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert svc.client.get("/readyz").json()["checks"]["nats"] is False
    service_nats.restart()
    deadline = time.monotonic() + 20
    while svc.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
