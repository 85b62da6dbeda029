"""Who is calling: edge JWTs to a :class:`Principal`, role guards, and signed consent receipts.

The only module that imports python-jose. It makes every check python-jose leaves to its caller:
size before any parsing, the header's ``alg`` against a list pinned from settings (never ``none``,
never HS* beside RS*/ES*), the key chosen by ``kid`` and key type, claim types, ``iat`` present
and not in the future, a lifetime no longer than ``jwt_max_lifetime_seconds`` (one clock skew,
``jwt_clock_skew_seconds``, for every time check), roles. Every rejection is :class:`Unauthorized`
with a fixed detail, never an echo. It is the one verification path: services do not cache or
re-decode tokens (a second decoder is how ``exp = 10**400`` once became a 500).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from jose import jwk, jws, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import Forbidden, ProblemError, ServiceUnavailable, Unauthorized, problem_response
from shared.settings import PlatformSettings

log = logging.getLogger("kinwell.auth")

JWKS_TTL_SECONDS = 300.0
# An unknown kid may force a JWKS fetch; this keeps tokens with random kids from hammering the IdP.
JWKS_MIN_REFETCH_SECONDS = 10.0
RECEIPT_TYPE = "kinwell-consent-receipt+jwt"
MAX_RECEIPT_BYTES = 64 * 1024

SYMMETRIC_ALGORITHMS = frozenset({"HS256"})
# alg -> (JWK kty, crv): a key is only ever used with an algorithm its type fits.
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None]] = {f"RS{n}": ("RSA", None) for n in (256, 384, 512)}
ASYMMETRIC_ALGORITHMS |= {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521")}
_MAX_TIME = 2**53  # seconds since the epoch; beyond this a float cannot count them exactly
_JOSE_REQUIRED = {f"require_{c}": True for c in ("exp", "iat", "sub", "iss", "aud")}
# Three base64url segments; the signature may be empty so that ``alg: none`` is refused by name.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_MISSING = "A bearer token is required."
_TOO_LARGE = "The bearer token is too large."
_INVALID = "The bearer token is invalid."
_EXPIRED = "The bearer token has expired."


class Role(StrEnum):
    """Roles carried in the ``roles`` claim."""

    employee = "employee"
    manager = "manager"
    hr_analyst = "hr_analyst"
    counsellor = "counsellor"
    admin = "admin"
    integration = "integration"


@dataclass(frozen=True)
class Principal:
    """The verified caller: an employee id (or an integration's client id) and its roles."""

    sub: str
    roles: frozenset[Role]
    token_id: str | None = None

    def has(self, *roles: Role | str) -> bool:
        """True when the principal holds at least one of ``roles``."""
        return any(Role(role) in self.roles for role in roles)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _header(token: str) -> dict[str, Any] | None:
    """The unverified JOSE header of a compact token, or None unless it is a JSON object."""
    try:
        header = json.loads(_b64decode(token.split(".", 1)[0]))
    except (ValueError, RecursionError):  # bad base64 or JSON, or absurd nesting
        return None
    return header if isinstance(header, dict) else None


def _public_key(entry: Any, alg: str) -> Any:
    """A python-jose key from the public members of a JWK, or None unless it fits ``alg``."""
    kty, crv = ASYMMETRIC_ALGORITHMS[alg]
    if not isinstance(entry, Mapping) or entry.get("kty") != kty or entry.get("alg", alg) != alg:
        return None
    if entry.get("use", "sig") != "sig" or (crv is not None and entry.get("crv") != crv):
        return None
    # Public members only: a JWKS that wrongly carries "d" must not become a private key here.
    try:
        material = {name: entry[name] for name in (("kty", "crv", "x", "y") if crv else ("kty", "n", "e"))}
        if kty == "RSA" and len(_b64decode(material["n"])) < 256:
            return None  # RSA keys under 2048 bits are refused
        return jwk.construct(material, alg)
    except (KeyError, TypeError, ValueError, JOSEError):
        return None


def _keys_by_kid(document: Any) -> dict[str, Mapping[str, Any]]:
    """Index a JWKS by ``kid``; keys without a string kid cannot be chosen, so they are dropped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    return {k["kid"]: k for k in document["keys"] if isinstance(k, Mapping) and isinstance(k.get("kid"), str)}


class _RemoteKeys:
    """A JWKS URL's keys, cached for ``ttl`` seconds and refetched (rate-limited) on an unknown kid."""

    def __init__(self, url: str, client: httpx.Client | None, ttl: float, clock: Callable[[], float]) -> None:
        self.url, self.client, self.ttl, self.clock = url, client, ttl, clock
        self.keys: dict[str, Mapping[str, Any]] = {}
        self.fetched_at, self.attempted_at = float("-inf"), float("-inf")
        self.lock = threading.Lock()

    def get(self, kid: str) -> Mapping[str, Any] | None:
        with self.lock:
            now = self.clock()
            stale = now - self.fetched_at > self.ttl or kid not in self.keys
            if stale and now - self.attempted_at >= JWKS_MIN_REFETCH_SECONDS:
                self.attempted_at = now
                self._fetch(now)
            if not self.keys:
                raise ServiceUnavailable("The identity provider's signing keys are unavailable.")
            return self.keys.get(kid)

    def _fetch(self, now: float) -> None:
        if self.client is None:  # created on first use: no network at import or construction
            self.client = httpx.Client(timeout=5.0, follow_redirects=False)
        try:
            response = self.client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            if len(response.content) > 1024 * 1024:
                raise ValueError("JWKS document too large")
            self.keys, self.fetched_at = _keys_by_kid(response.json()), now
        except (httpx.HTTPError, ValueError) as exc:
            # Keep the keys we have: a blip at the IdP should not log everyone out.
            log.warning("JWKS fetch failed", extra={"error_type": type(exc).__name__})


class TokenVerifier:
    """Verifies edge JWTs against the algorithms, issuer, audience and keys pinned in settings."""

    def __init__(
        self,
        settings: PlatformSettings,
        *,
        http_client: httpx.Client | None = None,
        jwks_ttl_seconds: float = JWKS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Pin algorithms and keys from ``settings``; ValueError on any unsafe combination."""
        algorithms = frozenset(settings.jwt_algorithms)
        if not algorithms or any(alg.lower() == "none" for alg in algorithms):
            raise ValueError("jwt_algorithms must be non-empty and must not contain 'none'")
        if algorithms - SYMMETRIC_ALGORITHMS - ASYMMETRIC_ALGORITHMS.keys():
            raise ValueError(f"jwt_algorithms supported: {sorted(SYMMETRIC_ALGORITHMS | ASYMMETRIC_ALGORITHMS.keys())}")
        if algorithms & SYMMETRIC_ALGORITHMS and algorithms - SYMMETRIC_ALGORITHMS:
            # With both pinned, a published public key could be replayed as an HMAC secret.
            raise ValueError("jwt_algorithms must not mix HS* with RS*/ES*")
        self.algorithms, self.max_token_bytes = algorithms, settings.max_token_bytes
        self.issuer, self.audience = settings.jwt_issuer, settings.jwt_audience
        self.skew, self.max_lifetime = settings.jwt_clock_skew_seconds, settings.jwt_max_lifetime_seconds
        self._options = {"leeway": self.skew, **_JOSE_REQUIRED}
        self._hmac_key: Any = None
        self._static: dict[str, Mapping[str, Any]] = {}
        self._remote: _RemoteKeys | None = None
        if algorithms & SYMMETRIC_ALGORITHMS:
            secret = settings.dev_jwt_secret.get_secret_value().encode() if settings.dev_jwt_secret else b""
            if settings.mode != "embedded" or len(secret) < 32:
                raise ValueError("HS256 needs embedded mode and a dev_jwt_secret of 32+ bytes")
            self._hmac_key = jwk.construct(secret, "HS256")
        elif settings.jwks_json:
            self._static = _keys_by_kid(json.loads(settings.jwks_json))
        elif settings.jwks_url:
            if settings.mode == "production" and not settings.jwks_url.startswith("https://"):
                raise ValueError("jwks_url must use https in production")
            self._remote = _RemoteKeys(settings.jwks_url, http_client, jwks_ttl_seconds, clock)
        else:
            raise ValueError("RS*/ES* algorithms need jwks_json or jwks_url")

    @property
    def may_block(self) -> bool:
        """True when verifying may fetch the IdP's JWKS over the network."""
        return self._remote is not None

    def verify(self, token: str) -> Principal:
        """The caller a bearer token proves; Unauthorized (fixed detail) for anything else.

        ServiceUnavailable (503) only when a JWKS URL has never answered, so no key is known at all.
        """
        if not isinstance(token, str) or not token:
            raise Unauthorized(_MISSING)
        # Size before any decoding. Characters never outnumber UTF-8 bytes, and _COMPACT admits
        # ASCII only, so this bounds all later work by max_token_bytes.
        if len(token) > self.max_token_bytes:
            raise Unauthorized(_TOO_LARGE)
        header = _header(token) if _COMPACT.fullmatch(token) else None
        if header is None or "crit" in header:  # no JWS extension is understood here
            raise Unauthorized(_INVALID)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or alg not in self.algorithms:
            raise Unauthorized(_INVALID)
        key = self._key(alg, header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer, options=dict(self._options)
            )
        except ExpiredSignatureError:
            raise Unauthorized(_EXPIRED) from None
        # python-jose calls int() on exp/nbf and json.loads on the payload, which raise these.
        except (JOSEError, TypeError, ValueError, OverflowError, RecursionError):
            raise Unauthorized(_INVALID) from None
        self._check_times(claims)
        return _principal(claims)

    def _check_times(self, claims: dict[str, Any]) -> None:
        """Times python-jose leaves open: types, ``iat`` in the future, absurd lifetimes."""
        times = {name: claims.get(name, 0) for name in ("exp", "nbf", "iat")}
        for value in times.values():  # python-jose takes "123" or true as a date
            # The range check first: it refuses NaN and infinities, and keeps the arithmetic
            # below from meeting an int too large for a float (exp = 10**400).
            if isinstance(value, bool) or not isinstance(value, int | float) or not -_MAX_TIME < value < _MAX_TIME:
                raise Unauthorized(_INVALID)
        now = time.time()
        if times["iat"] > now + self.skew:
            raise Unauthorized(_INVALID)
        # Both bounds: a token minted for 100 years is refused even if it claims a recent iat.
        if times["exp"] - times["iat"] > self.max_lifetime or times["exp"] > now + self.max_lifetime + self.skew:
            raise Unauthorized(_INVALID)

    def _key(self, alg: str, kid: Any) -> Any:
        if alg in SYMMETRIC_ALGORITHMS:
            return self._hmac_key
        if not isinstance(kid, str):  # JWKS keys are only ever chosen by kid
            raise Unauthorized(_INVALID)
        key = _public_key(self._remote.get(kid) if self._remote else self._static.get(kid), alg)
        if key is None:
            raise Unauthorized(_INVALID)
        return key


def _principal(claims: dict[str, Any]) -> Principal:
    """The caller named by claims whose signature and times have been verified."""
    sub, roles, jti = claims["sub"], claims.get("roles", []), claims.get("jti")
    if not isinstance(sub, str) or not 0 < len(sub) <= 256:
        raise Unauthorized(_INVALID)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized(_INVALID)
    try:
        return Principal(sub, frozenset(Role(r) for r in roles), jti if isinstance(jti, str) else None)
    except ValueError:
        raise Unauthorized(_INVALID) from None  # an unknown role: a misconfigured IdP, fail closed


def dev_token(settings: PlatformSettings, sub: str, roles: Iterable[Role | str], ttl_seconds: int = 3600) -> str:
    """An HS256 token for local use; RuntimeError unless embedded mode with the dev issuer on."""
    if settings.mode != "embedded" or not settings.dev_token_issuer or "HS256" not in settings.jwt_algorithms:
        raise RuntimeError("dev tokens need embedded mode, dev_token_issuer and HS256")
    if not 0 < ttl_seconds <= settings.jwt_max_lifetime_seconds:
        raise ValueError("ttl_seconds must be positive and within jwt_max_lifetime_seconds")
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "roles": sorted({Role(r).value for r in ([roles] if isinstance(roles, str) else roles)}),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return str(jwt.encode(claims, settings.secret("dev_jwt_secret"), algorithm="HS256"))


_PRINCIPAL = "kinwell.principal"  # where the verified caller is kept in the ASGI scope's state


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller named by ``Authorization: Bearer <token>``, else 401.

    Verified once per request: :class:`AuthenticateBeforeBody` verifies before the body is read
    and keeps the answer in the request's state. Verification is CPU work of tens of
    microseconds and runs inline; only a verifier that may fetch a JWKS document (a blocking
    call) is sent to the thread pool. A write by the caller then counts against its rate limit.
    """
    state = request.scope.setdefault("state", {})
    principal = state.get(_PRINCIPAL)
    if isinstance(principal, Principal):
        return principal
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(_MISSING)
    verifier = getattr(request.app.state, "verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.verifier is not a TokenVerifier")
    if verifier.may_block:
        principal = await run_in_threadpool(verifier.verify, token.strip())
    else:
        principal = verifier.verify(token.strip())
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.hit_principal(request.scope, principal.sub)
    state[_PRINCIPAL] = principal
    return principal


F = TypeVar("F", bound=Callable[..., Any])


def authenticates(dependency: F) -> F:
    """Mark a dependency that calls :func:`get_principal` itself (not through ``Depends``), so
    that its routes too are authenticated before their body is read."""
    dependency.__kinwell_authenticates__ = True  # type: ignore[attr-defined]
    return dependency


def needs_principal(dependant: Dependant) -> bool:
    return any(
        d.call is get_principal or getattr(d.call, "__kinwell_authenticates__", False) or needs_principal(d)
        for d in dependant.dependencies
    )


def body_routes_needing_principal(routers: Iterable[APIRouter]) -> list[tuple[re.Pattern[str], set[str]]]:
    """Path patterns and methods of the routes that take a declared body and need a caller."""
    found = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.body_field is not None and needs_principal(route.dependant):
                found.append((route.path_regex, set(route.methods or ())))
    return found


class AuthenticateBeforeBody:
    """Verify the bearer token of a route that needs one before FastAPI reads its body.

    FastAPI parses a declared body before it resolves dependencies, so a malformed body would
    answer 400 to a caller without a token. This verifies first (keeping the principal for
    :func:`get_principal`); routes that parse their body by hand call ``get_principal`` first.
    """

    def __init__(self, app: ASGIApp, routes: list[tuple[re.Pattern[str], set[str]]]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(
            scope["method"] in methods and pattern.match(scope["path"]) for pattern, methods in self.routes
        ):
            request = Request(scope)
            try:
                await get_principal(request)
            except ProblemError as err:
                await problem_response(err, request)(scope, receive, send)
                return
        await self.app(scope, receive, send)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


@authenticates
async def limited_read(request: Request) -> None:
    """Dependency of an expensive read (an export fans out to every service): it counts against
    the caller's rate limit as a write does."""
    principal = await get_principal(request)
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.hit_principal(request.scope, principal.sub, read=True)


def require_roles(*roles: Role | str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency returning the principal if it holds any of ``roles``: 403 if not, 401 first.

    One flat dependency (it calls :func:`get_principal` itself rather than through ``Depends``):
    FastAPI resolves every nested dependency anew on each request, tens of microseconds each,
    more than the role check. Dependencies built on it (``shared.subject``) call it the same way.
    """
    wanted = frozenset(Role(role) for role in roles)
    if not wanted:
        raise ValueError("require_roles needs at least one role")

    @authenticates
    async def guard(request: Request) -> Principal:
        principal = await get_principal(request)
        if principal.roles.isdisjoint(wanted):
            raise Forbidden("Your role does not allow this action.")
        return principal

    return guard


EmployeePrincipal = Annotated[Principal, Depends(require_roles(Role.employee))]
ManagerPrincipal = Annotated[Principal, Depends(require_roles(Role.manager))]
HRAnalystPrincipal = Annotated[Principal, Depends(require_roles(Role.hr_analyst))]
CounsellorPrincipal = Annotated[Principal, Depends(require_roles(Role.counsellor))]
AdminPrincipal = Annotated[Principal, Depends(require_roles(Role.admin))]
IntegrationPrincipal = Annotated[Principal, Depends(require_roles(Role.integration))]


class ReceiptInvalid(ValueError):
    """A consent receipt is malformed, edited, unsigned, or not signed by a published key."""


def _thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an EC public JWK."""
    canonical = json.dumps({m: public_jwk[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64encode(hashlib.sha256(canonical.encode()).digest())


class ReceiptSigner:
    """Signs consent receipts as compact ES256 JWS with the platform's receipt key."""

    def __init__(self, settings: PlatformSettings) -> None:
        """Load ``settings.receipt_signing_key``; ValueError unless an EC P-256 private key."""
        try:
            private = serialization.load_pem_private_key(settings.secret("receipt_signing_key"), None)
        except (TypeError, ValueError) as exc:
            raise ValueError("receipt_signing_key is not an unencrypted PEM private key") from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
            raise ValueError("receipt_signing_key must be an EC P-256 private key")
        point = private.public_key().public_numbers()
        x, y = (_b64encode(n.to_bytes(32, "big")) for n in (point.x, point.y))
        self._public = {"kty": "EC", "crv": "P-256", "x": x, "y": y}
        self.kid = _thumbprint(self._public)
        self._key = jwk.construct(private, "ES256")

    def sign(self, payload: Mapping[str, Any]) -> str:
        """Compact JWS of ``payload`` (canonical JSON) with header ``alg: ES256`` and ``kid``."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
        return str(jws.sign(body, self._key, headers={"kid": self.kid, "typ": RECEIPT_TYPE}, algorithm="ES256"))

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS that verifies this signer's receipts."""
        return {"keys": [{**self._public, "kid": self.kid, "alg": "ES256", "use": "sig"}]}


def verify_receipt(token: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a receipt signed with ES256 by the ``jwks`` key its ``kid`` names."""
    if not isinstance(token, str) or len(token) > MAX_RECEIPT_BYTES or not _COMPACT.fullmatch(token):
        raise ReceiptInvalid("malformed receipt")
    header = _header(token)
    if header is None or header.get("alg") != "ES256" or header.get("typ") != RECEIPT_TYPE or "crit" in header:
        raise ReceiptInvalid("not an ES256 consent receipt")
    kid = header.get("kid")
    try:
        key = _public_key(_keys_by_kid(jwks).get(kid), "ES256") if isinstance(kid, str) else None
    except ValueError:
        key = None
    if key is None:
        raise ReceiptInvalid("receipt key is unknown")
    try:
        payload = json.loads(jws.verify(token, key, algorithms=["ES256"]))
    except (JOSEError, ValueError, RecursionError):
        raise ReceiptInvalid("receipt signature is invalid") from None
    if not isinstance(payload, dict):
        raise ReceiptInvalid("receipt payload is not an object")
    return payload
