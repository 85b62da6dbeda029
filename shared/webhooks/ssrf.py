"""Which webhook targets may be reached, checked when a subscription is created and at every connect.

A target must be an ``https`` (or, where allowed, ``http``) URL without user info or fragment whose
host resolves only to public unicast addresses. Loopback, private, shared (CGNAT), link-local,
multicast, reserved and unspecified addresses are refused, also when written in IPv6 (IPv4-mapped,
NAT64, 6to4), unless an operator allows a network or a host name explicitly. Cloud metadata
endpoints are refused always.

The check that matters runs inside the HTTP client: :class:`GuardedTransport` resolves the host,
vets every address, and connects to a vetted address itself, so a DNS answer cannot change between
check and connect (DNS rebinding). The URL's host name still goes into ``Host`` and TLS SNI, and
certificates are verified against it. Proxies from the environment are ignored: a proxy would
connect on our behalf, unchecked.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import certifi
import httpcore
import httpx

from shared.webhooks.config import WebhookSettings

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6 and ECS, Alibaba, Azure wire server).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2048


class TargetRefused(Exception):
    """A webhook target is not allowed; ``reason`` is a fixed code, never the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (blocking: call it from a worker thread)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address."""
    if ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_unspecified:
        return False
    if ip.is_private or not ip.is_global:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)


@dataclass(frozen=True)
class TargetPolicy:
    """The SSRF rules, and the resolver they use (tests inject one)."""

    require_https: bool = True
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: WebhookSettings, resolver: Resolver | None = None) -> TargetPolicy:
        return cls(
            require_https=settings.require_https,
            allow_networks=tuple(ipaddress.ip_network(n, strict=False) for n in settings.allow_networks),
            allow_hosts=frozenset(settings.allow_hosts),
            resolver=resolver or system_resolver,
        )

    def address_allowed(self, address: str, host: str | None = None) -> bool:
        """May a connection go to ``address`` (reached by resolving ``host``)?"""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        effective: IPAddress = ip
        if isinstance(ip, ipaddress.IPv6Address):
            effective = _embedded_ipv4(ip) or ip
        if ip in METADATA_ADDRESSES or effective in METADATA_ADDRESSES:
            return False
        if any(effective in net or ip in net for net in self.allow_networks):
            return True
        if host is not None and host.lower().rstrip(".") in self.allow_hosts:
            return True
        return is_public(effective)

    def parse(self, url: str) -> httpx.URL:
        """The URL if its form is allowed (scheme, no user info, a host); no network access."""
        if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
            raise TargetRefused("url")
        if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
            raise TargetRefused("url")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise TargetRefused("url") from None
        if parsed.scheme not in ("http", "https") or (self.require_https and parsed.scheme != "https"):
            raise TargetRefused("scheme")
        if parsed.userinfo:
            raise TargetRefused("userinfo")
        if not parsed.host:
            raise TargetRefused("host")
        if parsed.fragment:
            raise TargetRefused("fragment")
        return parsed

    def vet(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` if every one is allowed; TargetRefused otherwise (blocking)."""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]  # a literal: nothing to resolve
        except ValueError:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError):
                raise TargetRefused("unresolvable") from None
        if not addresses:
            raise TargetRefused("unresolvable")
        # One bad address refuses the host: a name that also points inward is not a public target.
        if not all(self.address_allowed(a, host) for a in addresses):
            raise TargetRefused("address")
        return addresses

    def check_url(self, url: str) -> str:
        """Validate form and resolution of a subscription's URL (blocking); returns it normalised."""
        parsed = self.parse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.vet(parsed.raw_host.decode("ascii"), port)
        return str(parsed)

    async def avet(self, host: str, port: int) -> list[str]:
        return await anyio.to_thread.run_sync(self.vet, host, port)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, vets and connects to the vetted address."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.policy.avet(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout("resolution timed out") from None
        last: Exception = httpcore.ConnectError("no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix-socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`GuardedBackend`.

    httpx does not take a network backend, so the connection pool it builds is replaced by an
    identical one that does (``tests/integrations`` proves the guard is in the path).
    """

    def __init__(self, policy: TargetPolicy, *, max_connections: int = 100) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(policy: TargetPolicy, settings: WebhookSettings) -> httpx.AsyncClient:
    """The client every webhook goes out through: guarded, no redirects, no proxies, bounded."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, max_connections=settings.concurrency),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        headers={"User-Agent": settings.user_agent},
    )
