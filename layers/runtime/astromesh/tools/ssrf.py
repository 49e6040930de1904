"""The SSRF guard: outbound HTTP from tools reaches only public addresses.

A tool URL comes from configuration or, worse, from the model, which a prompt injection can
steer. So every connection a tool opens is checked *after* DNS resolution, and the checked
address is the one connected to:

- :class:`SSRFGuard` resolves a host (through an injectable :data:`Resolver`, so tests can
  fake DNS) and refuses private, loopback, link-local, unique-local, shared (CGNAT),
  multicast, reserved and cloud-metadata addresses, including IPv4 written inside IPv6
  (``::ffff:127.0.0.1``, 6to4, NAT64). ``allow_private_network`` lifts the refusal of the
  private kinds for tools that are meant to call internal services; metadata endpoints,
  multicast and reserved addresses stay refused whatever the flag (no legitimate tool
  needs the instance's credentials).
- :func:`guarded_client` returns an ``httpx.AsyncClient`` whose connections are opened by
  :class:`_GuardedBackend`: it resolves and checks the host, then connects to that very
  IP. DNS rebinding (a name that answers a public IP to the check and ``127.0.0.1`` to the
  connect) cannot work, because there is one resolution per connection. Every redirect hop
  opens its connection through the same backend, so redirects are checked too. TLS still
  verifies the certificate against the host name, and the ``Host`` header is untouched.
- ``trust_env`` is off: an ``HTTP(S)_PROXY`` from the environment would otherwise make
  the proxy, not the target, the address that gets checked.
- :func:`guarded_mcp_http_client` is the same client for the ``mcp`` SDK, which speaks
  ``httpx2`` (a fork with its own ``httpcore2``): MCP servers over streamable HTTP named by
  an agent registered through the API connect through it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from astromesh.errors import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``: how the guard turns a host name into IP addresses."""

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.169.253",  # AWS VPC DNS (link-local form)
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
    )
)
"""Cloud metadata endpoints: refused even with ``allow_private_network``."""

_NAT64_PREFIXES = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")

_PRIVATE_KINDS = frozenset(
    {"loopback", "private", "link-local", "unique-local", "shared (CGNAT)", "unspecified"}
)
"""The kinds ``allow_private_network`` lets through; every other kind is always refused."""


class BlockedDestination(ToolError):
    """A tool tried to reach an address it must not (private, metadata, ...)."""

    code = "blocked_destination"
    status = 403


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an address is not public: its ``kind`` and whether the private flag lifts it."""

    kind: str
    private: bool


def classify(address: IPAddress) -> Refusal | None:
    """``None`` for a public address, else what kind of non-public address it is.

    IPv4 carried inside IPv6 (mapped, compatible, 6to4, NAT64) is judged by the IPv4
    address it carries, which is where the packets end up.
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return classify(embedded)
    if address in METADATA_ADDRESSES:
        return Refusal("cloud metadata", private=False)
    kind = _kind(address)
    if kind is None:
        return None
    return Refusal(kind, private=kind in _PRIVATE_KINDS)


def _kind(address: IPAddress) -> str | None:
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if isinstance(address, ipaddress.IPv6Address) and (
        address in _UNIQUE_LOCAL or address.is_site_local
    ):
        return "unique-local"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "shared (CGNAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _NAT64_PREFIXES) or (
        address in _IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (``[::1]``, ``fe80::1%eth0`` too), else None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (``getaddrinfo``), without blocking the event loop.

    Numeric oddities such as ``2130706433`` or ``0x7f.1`` come back as the address they
    denote (``127.0.0.1``), so they are judged like any other answer.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class SSRFGuard:
    """Resolves hosts and refuses non-public destinations.

    Args:
        allow_private_network: let private, loopback, link-local, unique-local, shared and
            unspecified addresses through (for tools that call internal services on
            purpose). Metadata, multicast and reserved addresses are refused regardless.
        resolver: how host names become addresses (the OS by default; fakes in tests).
        allowed_hosts: when given, the only hosts that may be reached at all, checked before
            resolution: ``host``, ``host:port`` or ``*.domain`` (an agent's
            ``permissions.network.allowed``, or the registration policy's ``network_hosts``).
            It narrows; it never lifts a refusal of the address kinds above.
    """

    allow_private_network: bool = False
    resolver: Resolver = field(default=system_resolver)
    allowed_hosts: tuple[str, ...] | None = None

    def host_allowed(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is in :attr:`allowed_hosts` (always, when that is unset)."""
        if self.allowed_hosts is None:
            return True
        return any(host_matches(pattern, host, port) for pattern in self.allowed_hosts)

    def refusal(self, address: IPAddress) -> Refusal | None:
        """Why this guard refuses ``address``, or ``None`` when it may be connected to."""
        found = classify(address)
        if found is None or (found.private and self.allow_private_network):
            return None
        return found

    def check_address(self, address: IPAddress, *, host: str | None = None) -> None:
        """Raise :class:`BlockedDestination` when ``address`` is refused.

        The message names the kind of address, never anything from the response, and says
        how to allow it when the flag would.
        """
        found = self.refusal(address)
        if found is None:
            return
        target = f"{host}: it resolves to {address}," if host else f"{address}:"
        hint = "; set allow_private_network: true on the tool to allow it" if found.private else ""
        raise BlockedDestination(f"refused to connect to {target} a {found.kind} address{hint}")

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``, checked; refused if *any* is not allowed.

        Refusing on any bad answer (not just skipping it) keeps a mixed answer from being
        used to probe: the connection would otherwise go to whichever address works.
        """
        if not self.host_allowed(host, port):
            allowed = ", ".join(self.allowed_hosts or ()) or "none"
            raise BlockedDestination(
                f"refused to connect to {host}:{port}: not in the allowed hosts ({allowed})"
            )
        literal = parse_ip(host)
        if literal is not None:
            self.check_address(literal)
            return [literal]
        try:
            answers = await self.resolver(host, port)
        except OSError as exc:
            raise BlockedDestination(f"cannot resolve host {host!r}: {exc}") from exc
        addresses = [a for a in (parse_ip(answer) for answer in answers) if a is not None]
        if not addresses:
            raise BlockedDestination(f"host {host!r} has no address")
        for address in addresses:
            self.check_address(address, host=host)
        return addresses

    async def check_url(self, url: str) -> list[IPAddress]:
        """Check scheme and host of ``url`` now (the connection checks again, pinned)."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise BlockedDestination(f"invalid URL {url!r}: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise BlockedDestination(f"only http and https URLs are allowed, not {url!r}")
        if not parsed.host:
            raise BlockedDestination(f"URL {url!r} has no host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return await self.resolve(parsed.host, port)

    def check_literal(self, url: str) -> None:
        """At configuration time: refuse a URL whose host is a forbidden IP literal.

        Names are only checked at connect time (their answers change); a literal never does,
        so a bad one is reported when the agent is built.
        """
        parsed = httpx.URL(url)
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if host and not self.host_allowed(host, port):
            allowed = ", ".join(self.allowed_hosts or ()) or "none"
            raise BlockedDestination(f"host {host}:{port} is not in the allowed hosts ({allowed})")
        literal = parse_ip(host) if host else None
        if literal is not None:
            self.check_address(literal)


def host_matches(pattern: str, host: str, port: int) -> bool:
    """Whether ``host:port`` matches ``pattern`` (``host``, ``host:port``, ``*.domain``,
    ``[v6]:port``); host names compare case-insensitively, without a trailing dot."""
    pattern = pattern.strip().lower()
    want_port: int | None = None
    if pattern.startswith("["):
        inside, _, rest = pattern[1:].partition("]")
        pattern = inside
        if rest.startswith(":") and rest[1:].isdigit():
            want_port = int(rest[1:])
    elif pattern.count(":") == 1:
        name, _, digits = pattern.partition(":")
        if digits.isdigit():
            pattern, want_port = name, int(digits)
    if want_port is not None and want_port != port:
        return False
    host = host.strip().lower().rstrip(".").strip("[]")
    pattern = pattern.rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class _GuardedConnect:
    """The guarded ``connect_tcp``, shared by the ``httpcore`` and ``httpcore2`` backends.

    Both libraries have the same backend interface but distinct classes (and exception
    types), so the logic lives here and each backend class names its own errors.
    """

    _connect_errors: tuple[type[Exception], ...] = ()
    _timeout_error: type[Exception] = TimeoutError

    def __init__(self, guard: SSRFGuard, inner: Any) -> None:
        self._guard = guard
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._guard.resolve(host, port)
        except TimeoutError:
            raise self._timeout_error(f"resolving {host!r} timed out") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except self._connect_errors as exc:
                last_error = exc
        assert last_error is not None  # resolve() never returns an empty list
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        raise BlockedDestination("unix sockets are not reachable from tools")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedBackend(_GuardedConnect, httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the guard accepted, pinned to the check."""

    _connect_errors = (httpcore.ConnectError, httpcore.ConnectTimeout)
    _timeout_error = httpcore.ConnectTimeout


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle takes ~0.1 s."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool connects through the guard.

    httpx has no public parameter for httpcore's network backend, so the pool it builds is
    replaced by an identical one with :class:`_GuardedBackend`. The constructor checks the
    attribute it replaces, so an httpx that changes this fails loudly at start-up instead of
    silently connecting unguarded.
    """

    def __init__(self, guard: SSRFGuard, *, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        ssl_context = _ssl_context()
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        pool = getattr(self, "_pool", None)
        if not isinstance(pool, httpcore.AsyncConnectionPool):
            raise RuntimeError(
                "this httpx version does not build an httpcore.AsyncConnectionPool; "
                "the SSRF guard cannot pin connections"
            )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard, httpcore.AnyIOBackend()),
        )


def guarded_client(
    guard: SSRFGuard,
    *,
    timeout: float | httpx.Timeout,
    follow_redirects: bool = False,
    max_redirects: int = 5,
    headers: dict[str, str] | None = None,
    event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that can only reach what ``guard`` allows, on every hop."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard),
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        headers=headers,
        event_hooks=event_hooks,
        trust_env=False,
    )


@functools.cache
def _httpcore2_backend() -> type[Any]:
    """The guarded backend for ``httpcore2`` (imported only when an MCP client needs it)."""
    import httpcore2

    class _GuardedBackend2(_GuardedConnect, httpcore2.AsyncNetworkBackend):
        _connect_errors = (httpcore2.ConnectError, httpcore2.ConnectTimeout)
        _timeout_error = httpcore2.ConnectTimeout

    return _GuardedBackend2


def guarded_mcp_http_client(
    guard: SSRFGuard, *, headers: dict[str, str] | None = None, timeout: Any = None
) -> Any:
    """An ``httpx2.AsyncClient`` for the ``mcp`` SDK that can only reach what ``guard`` allows.

    The SDK's streamable HTTP transport takes the client (``http_client=``) and follows
    same-origin redirects itself, each through this client, so every hop's connection is
    resolved, checked and pinned like :func:`guarded_client`'s. As there, the pool httpx2
    builds is replaced by one with the guarded backend (checked, so an httpx2 that changes
    this fails loudly), TLS verifies against the host name and ``trust_env`` is off.

    Args:
        timeout: an ``httpx2.Timeout`` (the SDK's defaults when omitted).
    """
    import httpcore2
    import httpx2
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    ssl_context = httpx2.create_ssl_context(trust_env=False)
    limits = httpx2.Limits(max_connections=20, max_keepalive_connections=10)
    transport = httpx2.AsyncHTTPTransport(verify=ssl_context, trust_env=False, limits=limits)
    if not isinstance(getattr(transport, "_pool", None), httpcore2.AsyncConnectionPool):
        raise RuntimeError(
            "this httpx2 version does not build an httpcore2.AsyncConnectionPool; "
            "the SSRF guard cannot pin MCP connections"
        )
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_httpcore2_backend()(guard, httpcore2.AnyIOBackend()),
    )
    return httpx2.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        follow_redirects=False,  # the SDK follows same-origin redirects itself, through us
        trust_env=False,
    )
