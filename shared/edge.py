"""Security headers on every HTTP response of a service.

Responses carry personal data (check-ins, consents, exports): nothing may cache them, sniff them
into another type or frame them. The headers are set once here, in the app factory, so no route
can forget them; a route that sets one of them itself (a public, cacheable JWKS) keeps its own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
# An API answers JSON: it loads nothing and may be framed by nothing.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
# The interactive docs load Swagger UI / ReDoc from their CDN; they are off in production.
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Pure ASGI: adds :data:`SECURITY_HEADERS` (and a CSP) to every ``http.response.start``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = SECURITY_HEADERS
        if not scope["path"].startswith(DOCS_PATHS):
            defaults = (*defaults, API_CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in defaults if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
