"""Traces, metrics and logs, set up once per process in ``create_app``.

* Traces: OpenTelemetry, W3C trace context carried in HTTP and NATS headers. The exporter is off
  by default (``KINWELL_OTEL_EXPORTER=console|otlp`` turns it on). Span attributes are route
  templates, subjects and outcomes: never ids of people, bodies or free text.
* Metrics: Prometheus text on each service's own metrics listener (``metrics_port``, not the
  service port); labels are service, route template, status, consumer. No counter moves with one
  person's sensitive event (see :func:`counted`).
* Logs: one JSON object per line. Only allow-listed ``extra`` keys are emitted, so a stray
  ``log.info(..., extra={"note": ...})`` cannot put personal data into the log stream.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from prometheus_client import CollectorRegistry, Counter, Histogram

# Keys a log record may carry besides its message; anything else is dropped.
SAFE_LOG_FIELDS = frozenset(
    {
        "service",
        "route",
        "method",
        "status",
        "duration_ms",
        "subject",
        "stream",
        "consumer",
        "event_type",
        "error_type",
        "attempt",
        "count",
        "port",
        "url",
        "path",
        "outcome",
        "request_id",
        "vendor",  # an HRIS vendor's name (kinwell, bamboohr, merge)
        "events",  # counts
        "published",
        "writer",  # a group-commit writer's name
    }
)

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "kinwell_http_requests_total", "HTTP requests", ["service", "route", "method", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "kinwell_http_request_seconds", "HTTP request latency", ["service", "route"], registry=REGISTRY
)
EVENTS_PUBLISHED = Counter(
    "kinwell_events_published_total", "Events relayed from the outbox", ["service"], registry=REGISTRY
)
EVENTS_CONSUMED = Counter(
    "kinwell_events_consumed_total", "Events consumed", ["service", "consumer", "outcome"], registry=REGISTRY
)
# reason: an exception class name or ContractViolation (a small, fixed set; never a message).
DEAD_LETTERS = Counter(
    "kinwell_dead_letters_total",
    "Messages a consumer dead-lettered",
    ["service", "consumer", "reason"],
    registry=REGISTRY,
)

# Events each of which is one person's sensitive moment (a crisis flag): a counter that moved with
# them would tell whoever reads the metrics that someone was flagged just now. They are counted
# only in the de-identified, delayed program metrics (the aggregator's releases), never here.
UNCOUNTED_SUBJECT_PREFIXES: tuple[str, ...] = ("checkin.escalation.",)


def counted(subject: str) -> bool:
    """True when events on ``subject`` (or a consumer filter) may move operational counters."""
    return not subject.startswith(UNCOUNTED_SUBJECT_PREFIXES)


_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with only allow-listed extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            # Our own messages are fixed strings; library messages (uvicorn, alembic) get their
            # arguments filled in, capped so that nothing long can ride along.
            "msg": record.getMessage()[:300],
        }
        for key in SAFE_LOG_FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: exception messages may quote data.
            out["error_type"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints full URLs with query strings: keep it off, we log route templates.
    logging.getLogger("uvicorn.access").disabled = True


def setup_tracing(service: str, exporter: str = "none", endpoint: str | None = None) -> None:
    """Install a tracer provider once per process, only when spans are exported.

    With no exporter the API's no-op tracer stays: a span nobody receives costs a third of a
    small request (ids, context attach/detach, attributes), and no trace context is forwarded.
    """
    global _configured
    if _configured or exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"kinwell-{service}"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True


def tracing_enabled() -> bool:
    """True once :func:`setup_tracing` installed an exporting provider in this process."""
    return _configured


def tracer(name: str = "kinwell") -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (for NATS messages and outbound HTTP)."""
    carrier: dict[str, str] = dict(headers or {})
    inject(carrier)
    return carrier


@contextmanager
def span_from_headers(name: str, headers: Mapping[str, str] | None, **attributes: Any) -> Iterator[trace.Span]:
    """A consumer span that continues the trace whose context arrived in ``headers``.

    Without an exporter (see :func:`setup_tracing`) there is nothing to continue or record: the
    no-op span, without reading the headers (per message, that work was a tenth of a consumer's
    ingest time in bench_aggregator).
    """
    if not _configured:
        yield trace.INVALID_SPAN
        return
    ctx = extract(dict(headers or {}))
    token = otel_context.attach(ctx)
    try:
        with tracer().start_as_current_span(name, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_: Any) -> None:
        self.elapsed = time.perf_counter() - self.start
