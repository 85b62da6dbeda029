"""``create_service_app``: the one way a Kinwell service is assembled.

Every service is the same shape: settings -> telemetry -> database (migrated) -> HTTP routes,
plus, in the background, the NATS connection with its streams, the outbox relay, the consent gate,
durable consumers and request/reply responders. The HTTP side comes up at once; ``/readyz`` says
when the rest is ready, so an orchestrator never routes traffic to a half-started service and
NATS being down at start-up is a wait, not a crash.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import start_http_server
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import audit, clock, faults
from shared.auth import AuthenticateBeforeBody, TokenVerifier, body_routes_needing_principal
from shared.bus.connection import Bus
from shared.bus.consumer import Consumer, Handler
from shared.bus.outbox import OutboxRelay, stage
from shared.consent_gate import ConsentGate
from shared.db import make_engine, require_migrated, run_migrations
from shared.edge import SecurityHeaders
from shared.errors import BodyLimitMiddleware, install_error_handlers
from shared.events.subject import ErasureRequested, SubjectDataReply, SubjectDataRequest, SubjectErased
from shared.openapi import install_openapi
from shared.periodic import every, run_once
from shared.ratelimit import InFlightLimit, RateLimiter, SourceRateLimit
from shared.settings import ServiceSettings
from shared.telemetry import (
    HTTP_LATENCY,
    HTTP_REQUESTS,
    REGISTRY,
    setup_logging,
    setup_tracing,
    tracer,
    tracing_enabled,
)
from shared.topology import (
    SUBJECT_REQUEST_RESPONDERS,
    ConsumerSpec,
    access_log_subject,
    consumers_for,
    export_subject,
)

if TYPE_CHECKING:
    from shared.webhooks.sender import WebhookSender

log = logging.getLogger("kinwell.app")

SubjectDataFn = Callable[[Session, str], dict[str, Any]]


@dataclass
class ConsumerBinding:
    """Wires a topology consumer to its contract and handler."""

    filter_subject: str
    adapter: TypeAdapter[Any]
    handler: Handler
    max_deliver: int = 5
    batch: int = 64  # messages per fetch, applied in one transaction


def erasure_binding(service: str, erase: Callable[[Session, str], int]) -> ConsumerBinding:
    """Consume ``subject.erasure.requested.v1``: erase (``erase`` returns the rows it deleted), then
    acknowledge in the same transaction, so an acknowledged erasure has happened."""

    def handle(session: Session, event: ErasureRequested) -> None:
        records = erase(session, event.pseudonym)
        stage(session, SubjectErased(request_id=event.request_id, service=service, records=records))

    return ConsumerBinding("subject.erasure.>", TypeAdapter(ErasureRequested), handle)


@dataclass
class ServiceSpec:
    """What makes one service different from another."""

    name: str
    migrations: Path
    routers: list[APIRouter] = field(default_factory=list)
    consumers: Callable[[Runtime], list[ConsumerBinding]] | None = None
    export: SubjectDataFn | None = None
    # Default for services that answer data-subject requests: their platform audit log's entries.
    access_log: SubjectDataFn | None = None
    uses_gate: bool = False
    on_start: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)
    title: str = ""
    description: str = ""
    # Models of bodies that routes parse by hand (shared.openapi.parse_body), for the document.
    schemas: list[type[BaseModel]] = field(default_factory=list)
    # Paths whose bodies have their own limit instead of ``max_body_bytes`` (bulk ingest).
    body_limits: dict[str, int] = field(default_factory=dict)


@dataclass
class Runtime:
    """The live parts of a running service, kept on ``app.state.runtime``."""

    spec: ServiceSpec
    settings: ServiceSettings
    engine: Engine
    bus: Bus
    relay: OutboxRelay
    gate: ConsentGate | None
    consumers: list[Consumer] = field(default_factory=list)
    bus_ready: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # The service's own background work from ``on_start`` is running: a hook retried after a
    # failure must not start it twice.
    started: bool = False
    # Outbound webhooks (shared.webhooks.hooks): the sender and its retention purge, while running.
    webhook_sender: WebhookSender | None = None
    webhook_purge: asyncio.Task[None] | None = None

    def readiness(self) -> dict[str, bool]:
        checks = {"database": self._db_ok(), "nats": self.bus.connected and self.bus_ready}
        if self.gate is not None:
            checks["consent_projection"] = self.gate.synced
        checks["consumers"] = all(c.ready for c in self.consumers)
        return checks

    def outbox_detail(self) -> dict[str, int]:
        """Rows waiting for JetStream and rows parked after their attempts ran out (``/readyz``
        detail: parked rows do not make a service unready, the rest of its outbox flows)."""
        from shared.bus import parking
        from shared.bus.outbox import pending_count

        try:
            pending, parked = pending_count(self.engine), parking.parked_count(self.engine)
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return {}
        parking.OUTBOX_PARKED.labels(self.spec.name).set(parked)
        return {"pending": pending, "parked": parked}

    def _db_ok(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return False


async def _start_bus(rt: Runtime) -> None:
    """Connect (retrying until NATS answers), declare streams, start relay, gate and consumers."""
    delay = 0.2
    while True:
        try:
            await rt.bus.connect()
            break
        except Exception as exc:  # noqa: BLE001 - NATS not up yet: keep trying
            log.warning("waiting for nats", extra={"service": rt.spec.name, "error_type": type(exc).__name__})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    while True:
        try:
            await rt.bus.wait_for_streams()
            break
        except Exception as exc:  # noqa: BLE001 - not provisioned yet: keep waiting
            log.warning("waiting for streams", extra={"service": rt.spec.name, "error_type": type(exc).__name__})
            await asyncio.sleep(1.0)
    rt.relay.start()
    if rt.gate is not None:
        await rt.gate.start(rt.bus)
    bindings = rt.spec.consumers(rt) if rt.spec.consumers else []
    specs = {c.filter_subject: c for c in consumers_for(rt.spec.name)}
    for binding in bindings:
        cspec: ConsumerSpec = specs[binding.filter_subject]
        consumer = Consumer(
            rt.bus,
            rt.engine,
            stream=cspec.stream,
            name=cspec.name,
            filter_subject=cspec.filter_subject,
            adapter=binding.adapter,
            handler=binding.handler,
            max_deliver=binding.max_deliver,
            batch=binding.batch,
        )
        rt.consumers.append(consumer)
        consumer.start()
    responder = rt.spec.name in SUBJECT_REQUEST_RESPONDERS
    for subject, fn in (
        (export_subject(rt.spec.name), rt.spec.export),
        (access_log_subject(rt.spec.name), rt.spec.access_log or (audit.access_log if responder else None)),
    ):
        if fn is not None:
            await _serve_subject_data(rt, subject, fn)
    for hook in rt.spec.on_start:
        while True:
            try:
                await hook(rt)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. the KV bucket is not provisioned yet
                log.warning(
                    "start-up step failed; retrying",
                    extra={"service": rt.spec.name, "error_type": type(exc).__name__},
                )
                await asyncio.sleep(1.0)
    rt.bus_ready = True
    rt.tasks.append(asyncio.create_task(_freeze_when_synced(rt), name="gc-freeze"))
    await run_once(f"{rt.spec.name}-audit-verify", audit_round(rt))


async def _freeze_when_synced(rt: Runtime) -> None:
    """Once started (the gate's projection replayed, the ``on_start`` hooks run), move what the
    process holds for its lifetime out of the cyclic garbage collector's reach (``gc.freeze``).

    A gate of 100,000 keys and a cached catalogue of 10,000 resources are ~400,000 objects,
    which every full collection walked: a pause of ~120-140 ms every few seconds under load
    (bench_recommender: p99 past 100 ms at 100-250/s). Frozen objects are still freed by their
    reference counts; the lifespan unfreezes them at shutdown (several services may share one
    process in tests)."""
    if rt.gate is not None:
        await rt.gate.wait_synced()
    gc.collect()
    gc.freeze()


async def _serve_subject_data(rt: Runtime, subject: str, fn: SubjectDataFn) -> None:
    async def handle(msg: Any) -> None:
        try:
            req = SubjectDataRequest.model_validate_json(msg.data)

            def run() -> dict[str, Any]:
                with Session(rt.engine) as session:
                    result = fn(session, req.pseudonym)
                    session.commit()  # access-log entries written while answering
                    return result

            data = await asyncio.to_thread(run)
            reply = SubjectDataReply(service=rt.spec.name, data=data)
        except Exception as exc:  # noqa: BLE001 - answer with the error type, never its text
            reply = SubjectDataReply(service=rt.spec.name, data={"error": type(exc).__name__})
        await msg.respond(reply.model_dump_json().encode())

    assert rt.bus.nc is not None
    await rt.bus.nc.subscribe(subject, queue=rt.spec.name, cb=handle)


AUDIT_VERIFY_SECONDS = 300.0


def _verify_audit_chain(rt: Runtime, key: bytes) -> asyncio.Task[Any]:
    """Key the audit chain, then verify it against its last anchored head and anchor the current
    one on a schedule (besides every read): the verdict is the ``kinwell_audit_chain_intact``
    gauge, alerted on when 0 (docs/operations.md)."""
    audit.use_key(key)
    return every(AUDIT_VERIFY_SECONDS, audit_round(rt), name=f"{rt.spec.name}-audit-verify")


def audit_round(rt: Runtime) -> Callable[[], Awaitable[int]]:
    """One verification-and-anchoring round of the service's audit chain (also run once as soon as
    the bus is up, so a service that restarts often still anchors)."""

    async def check() -> int:
        return await audit.check_and_anchor(rt.engine, rt.bus, rt.spec.name, connected=rt.bus_ready)

    return check


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    """Build the FastAPI app of a service."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = settings.platform
        faults.refuse_in_production(platform.mode)
        clock.refuse_in_production(platform.mode)  # the demo clock: embedded mode only
        setup_logging(platform.log_level)
        setup_tracing(spec.name, platform.otel_exporter, platform.otel_endpoint)
        assert settings.database_url is not None
        if settings.migrate_on_start:
            await asyncio.to_thread(run_migrations, settings.database_url, spec.migrations)
        else:  # migrations are their own step (kinwell migrate / the Kubernetes Job)
            await asyncio.to_thread(require_migrated, settings.database_url, spec.migrations, spec.name)
        engine = make_engine(settings.database_url)
        password = settings.nats_password.get_secret_value() if settings.nats_password else None
        bus = Bus(
            spec.name,
            platform.nats_url,
            settings.nats_user,
            password,
            replicas=platform.nats_replicas,
            tls_ca_file=platform.nats_tls_ca_file,
        )
        rt = Runtime(
            spec=spec,
            settings=settings,
            engine=engine,
            bus=bus,
            relay=OutboxRelay(engine, bus),
            gate=ConsentGate() if spec.uses_gate else None,
        )
        app.state.runtime = rt
        app.state.engine = engine
        app.state.settings = settings
        rt.tasks.append(asyncio.create_task(_start_bus(rt), name="bus-start"))
        rt.tasks.append(_verify_audit_chain(rt, platform.secret("audit_key")))
        metrics = _start_metrics_listener(settings)
        log.info("service started", extra={"service": spec.name, "port": settings.port})
        try:
            yield
        finally:
            if metrics is not None:
                await asyncio.to_thread(metrics.shutdown)
                metrics.server_close()
            for task in rt.tasks:
                task.cancel()
            for hook in spec.on_stop:
                await hook(rt)
            await asyncio.gather(*(consumer.stop() for consumer in rt.consumers))
            if rt.gate is not None:
                await rt.gate.stop()
            await rt.relay.stop()
            await bus.close()
            engine.dispose()
            gc.unfreeze()

    docs = bool(settings.platform.api_docs)
    app = FastAPI(
        title=spec.title or f"Kinwell {spec.name}",
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        # The documents describe every route; production serves them only when asked to.
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        # FastAPI's own OpenTelemetry (0.16x) would add four more spans per request beside ours
        # (a third of a small request's cost) and may record URLs and validation inputs: ours
        # records route templates only.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.verifier = TokenVerifier(settings.platform)
    app.state.limiter = RateLimiter(settings.rate_limit_per_principal, settings.rate_limit_per_source)
    install_error_handlers(app)
    # Innermost of the edge middlewares: a shed request still gets the security headers and is
    # counted (and traced) by the telemetry as its 503.
    app.add_middleware(InFlightLimit, limit=settings.http_max_in_flight)
    _install_http_telemetry(app, spec.name)

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    def healthz() -> dict[str, str]:
        """The process is alive (says nothing about its dependencies)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness", responses={503: {"description": "Not ready"}})
    def readyz(request: Request) -> JSONResponse:
        """Database, NATS (streams, relay, consumers) and, where used, the consent projection."""
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        checks = rt.readiness() if rt else {"started": False}
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if rt is not None:
            body["outbox"] = rt.outbox_detail()
        return JSONResponse(body, status_code=200 if ready else 503)

    for router in spec.routers:
        app.include_router(router)
    install_openapi(app, spec.routers, spec.schemas)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, per_path=spec.body_limits)
    app.add_middleware(AuthenticateBeforeBody, routes=body_routes_needing_principal(spec.routers))
    app.add_middleware(SourceRateLimit, limiter=app.state.limiter)
    app.add_middleware(SecurityHeaders)
    return app


def _start_metrics_listener(settings: ServiceSettings) -> WSGIServer | None:
    """Prometheus metrics on their own listener (``metrics_host:metrics_port``), never on the
    service port: the ingress routes the service port only, so what counters reveal about
    activity stays with operators. None when no metrics port is configured."""
    if settings.metrics_port is None:
        return None
    try:
        server, _thread = start_http_server(settings.metrics_port, settings.metrics_host, registry=REGISTRY)
    except OSError as exc:  # metrics are for operators: the service itself keeps serving
        log.error("metrics listener failed", extra={"port": settings.metrics_port, "error_type": type(exc).__name__})
        return None
    return server


def _install_http_telemetry(app: FastAPI, service: str) -> None:
    """A span and metrics per request, labelled by route template (never the concrete path)."""
    app.add_middleware(_HttpTelemetry, service=service)


class _HttpTelemetry:
    """Pure ASGI (``@app.middleware("http")`` runs each request through extra tasks and streams,
    which cost more than a small endpoint itself)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # A proxy until the lifespan installs the provider; resolved once, not per request
        # (the SDK's get_tracer costs a warnings-filter round trip on every call).
        self.tracer = tracer()
        self._metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled children, by route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if not tracing_enabled():  # no exporter: metrics only (see setup_tracing)
            try:
                await self.app(scope, receive, send_status)
            finally:
                self._count(scope, status, start)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        with self.tracer.start_as_current_span("http", context=extract(headers), kind=trace.SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = self._count(scope, status, start)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.status_code", status)

    def _count(self, scope: Scope, status: int, start: float) -> str:
        """Count the request and its latency under its route template; returns the template."""
        route = getattr(scope.get("route"), "path", "unmatched")
        key = (route, scope["method"], status)
        children = self._metrics.get(key)
        if children is None:  # route templates, methods and statuses: a small, bounded set
            children = (
                HTTP_REQUESTS.labels(self.service, route, scope["method"], str(status)),
                HTTP_LATENCY.labels(self.service, route),
            )
            self._metrics[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - start)
        return str(route)
