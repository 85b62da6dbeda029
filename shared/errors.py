"""Errors as problem+json (RFC 9457) for every 4xx and 5xx.

Domain code raises a :class:`ProblemError` subclass that names its status; one set of handlers
renders every error, including FastAPI's validation errors and unknown routes, as
``application/problem+json``. Messages are fixed strings chosen by the code: never an echo of the
request body, so no personal data or free text can leak into an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://kinwell.dev/problems/"

log = logging.getLogger("kinwell.errors")


class ProblemError(Exception):
    """An error with an HTTP status, rendered as problem+json."""

    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(ProblemError):
    status, code, title = 400, "bad-request", "Bad request"


class Unauthorized(ProblemError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="kinwell"'})
        super().__init__(detail, **kw)


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


class ConsentRequired(Forbidden):
    """A purpose the request needs has no current consent; ``purpose`` names it."""

    code, title = "consent-required", "Consent required"

    def __init__(self, purpose: str, **kw: Any) -> None:
        super().__init__(f"This needs your consent to the '{purpose}' purpose.", purpose=purpose, **kw)


class NotFound(ProblemError):
    status, code, title = 404, "not-found", "Not found"


class MethodNotAllowed(ProblemError):
    status, code, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class Gone(ProblemError):
    status, code, title = 410, "gone", "Gone"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ProblemError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(ProblemError):
    status, code, title = 422, "validation-error", "Request failed validation"


class TooManyRequests(ProblemError):
    status, code, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(ProblemError):
    status, code, title = 503, "unavailable", "Service unavailable"


_STATUS_CLASSES: dict[int, type[ProblemError]] = {
    c.status: c
    for c in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Gone,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unprocessable,
        TooManyRequests,
        ServiceUnavailable,
    )
}


def problem_of(exc: StarletteHTTPException) -> ProblemError:
    """Starlette's HTTP exception as our problem (its own details, "Not Found", are generic)."""
    cls = _STATUS_CLASSES.get(exc.status_code)
    if cls is None:
        err = ProblemError(str(exc.detail) if exc.status_code < 500 else None)
        err.status = exc.status_code
        err.title = "Error"
        err.code = "error"
    else:
        err = cls(str(exc.detail) if isinstance(exc.detail, str) else None)
    if exc.headers:
        err.headers.update(exc.headers)
    return err


def problem_response(err: ProblemError, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(err.body(instance), status_code=err.status, media_type=PROBLEM_JSON, headers=err.headers)


def _safe_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Location, type and pydantic's generic message: never the offending input."""
    out = []
    for e in errors:
        out.append(
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "type": e.get("type", "invalid"),
                "msg": str(e.get("msg", "invalid value"))[:200],
            }
        )
    return out[:50]


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of ``app`` as problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            err: ProblemError = BadRequest("The body is not valid JSON.", code="malformed-json")
        else:
            err = Unprocessable(errors=_safe_validation_errors(errors))
        return problem_response(err, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(problem_of(exc), request)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up (or its body read timed out, see shared.server): nobody is left to
        # answer, and it is not a fault of ours.
        log.info("client disconnected", extra={"path": request.url.path, "outcome": "disconnected"})
        return Response(status_code=499)

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        # Every pooled connection busy (overload) or the database unreachable: nothing of the
        # request was kept, and the same request can simply be sent again.
        log.warning("database unavailable", extra={"error_type": type(exc).__name__, "path": request.url.path})
        err = ServiceUnavailable("The service is busy; please retry shortly.", code="database-unavailable")
        err.headers["Retry-After"] = "1"
        return problem_response(err, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The exception type only: its message might contain data from the request.
        log.error("unhandled error", extra={"error_type": type(exc).__name__, "path": request.url.path})
        err = ProblemError("An unexpected error occurred; it has been logged.")
        err.status, err.code, err.title = 500, "internal", "Internal error"
        return problem_response(err, request)


_CLOSE = {"Connection": "close"}


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int, per_path: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})  # paths with a limit of their own (bulk ingest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.per_path.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > max_bytes:
                    await self._reject(scope, receive, send, max_bytes)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # A Starlette HTTPException: FastAPI re-raises those from its body parsing,
                    # where it would turn any other error into a 400 (a chunked body has no
                    # Content-Length to refuse early).
                    # Connection: close, so the client stops sending the rest.
                    raise StarletteHTTPException(413, f"The body exceeds {max_bytes} bytes.", _CLOSE)
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        err = PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
        response = JSONResponse(err.body(scope.get("path")), status_code=413, media_type=PROBLEM_JSON, headers=_CLOSE)
        await response(scope, receive, send)
