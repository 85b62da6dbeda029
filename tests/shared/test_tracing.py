"""HTTP telemetry: spans only when an exporter is configured, named by route template, never a path.

The tracer provider is process-global and installed once, so each case runs in its own interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry import trace
    from shared.app import _install_http_telemetry
    from shared.telemetry import HTTP_REQUESTS, setup_tracing, tracing_enabled

    setup_tracing("tracetest", sys.argv[1])
    # As the services build theirs: FastAPI's own spans off (ours carry route templates only).
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})

    @app.get("/v1/things/{thing_id}")
    def thing(thing_id: str) -> dict:
        return {"ok": True}

    _install_http_telemetry(app, "tracetest")
    with TestClient(app) as client:
        assert client.get("/v1/things/E-0042-jane.doe", params={"q": "private note"}).status_code == 200
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    count = HTTP_REQUESTS.labels("tracetest", "/v1/things/{thing_id}", "GET", "200")._value.get()
    print("RESULT", tracing_enabled(), int(count), flush=True)
    """
)


def _run(exporter: str) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT, exporter], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_with_an_exporter_each_request_is_a_span_named_by_its_route_template():
    out = _run("console")
    assert "RESULT True 1" in out
    spans, text, decoder = [], out[: out.index("RESULT")].strip(), json.JSONDecoder()
    while text:
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    assert [s["name"] for s in spans] == ["GET /v1/things/{thing_id}"]
    assert spans[0]["kind"] == "SpanKind.SERVER"
    assert spans[0]["attributes"]["http.route"] == "/v1/things/{thing_id}"
    assert spans[0]["attributes"]["http.status_code"] == 200
    # Neither the concrete path nor the query reaches the trace.
    assert "jane.doe" not in out and "private note" not in out and "E-0042" not in out


def test_without_an_exporter_requests_are_counted_but_no_span_is_made():
    out = _run("none")
    assert out.strip() == "RESULT False 1"


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from shared.telemetry import setup_tracing, span_from_headers

    setup_tracing("tracetest", sys.argv[1])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    with span_from_headers("consume x.y", headers, subject="x.y", consumer="c") as span:
        current = trace.get_current_span().get_span_context()
        print("RESULT", span.is_recording(), current.is_valid, format(current.trace_id, "032x") == trace_id)
    """
)


def _consume(exporter: str) -> str:
    done = subprocess.run([sys.executable, "-c", CONSUMER_SCRIPT, exporter], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_with_an_exporter_a_consumer_span_continues_the_producers_trace():
    assert "RESULT True True True" in _consume("console")


def test_without_an_exporter_a_consumer_reads_no_trace_context_and_makes_no_span():
    assert _consume("none").strip() == "RESULT False False False"
