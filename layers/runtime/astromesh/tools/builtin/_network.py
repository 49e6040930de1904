"""What the network builtins share: their ``config`` block, the guarded client, bounded reads.

``http_get``, ``http_request``, ``web_scrape``, ``send_webhook`` and ``send_slack`` take a URL
(from the model or the document) and reach it through the SSRF guard of
:mod:`astromesh.tools.ssrf`: resolved, checked, pinned, on every redirect hop. The agent's
grants (:meth:`~astromesh.security.grants.Grants.tool_guard`) decide whether the tool's own
``allow_private_network`` may lift the refusal of private addresses, and which hosts may be
reached at all; a tool's ``allowed_hosts`` can only narrow that further.

A response body is read in chunks and cut at ``max_response_bytes``: a hostile page cannot
make the server hold gigabytes to answer one tool call.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import httpx
from pydantic import Field, model_validator

from astromesh.errors import ToolError
from astromesh.tools.builtin._common import BuiltinConfig
from astromesh.tools.ssrf import BlockedDestination, SSRFGuard, guarded_client

MAX_HEADER_COUNT = 50
"""Headers the model may set on one request (a bound, not a real-world need)."""

FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "proxy-authorization"}
)
"""Request headers the model may not set: ``Host`` would aim an allowed connection at another
virtual host than the one checked; the others belong to the transport."""


class NetworkConfig(BuiltinConfig):
    """``config`` of a builtin that reaches URLs.

    ``allow_localhost`` is upstream's name for the same switch and is read as
    ``allow_private_network``.
    """

    allow_private_network: bool = False
    allowed_hosts: list[str] | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=300)
    max_response_bytes: int = Field(1_000_000, ge=1, le=20_000_000)
    max_redirects: int = Field(5, ge=0, le=20)

    @model_validator(mode="before")
    @classmethod
    def _upstream_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "allow_localhost" in data:
            data = dict(data)
            flag = data.pop("allow_localhost")
            data.setdefault("allow_private_network", flag)
        return data


def check_scheme_and_host(request: httpx.Request, allowed_hosts: list[str] | None) -> None:
    """Refuse a request (first or a redirect hop) that is not http(s) or leaves
    ``allowed_hosts``; an httpx ``request`` event hook."""
    if request.url.scheme not in ("http", "https"):
        raise BlockedDestination(f"only http and https URLs are allowed, not {request.url}")
    host = request.url.host
    if allowed_hosts is not None and not any(fnmatch.fnmatch(host, p) for p in allowed_hosts):
        raise BlockedDestination(f"host {host!r} is not in this tool's allowed_hosts")


def check_url_shape(url: str) -> None:
    """Refuse what is not an http(s) URL before anything is resolved."""
    if not url.startswith(("http://", "https://")):
        raise BlockedDestination(f"only http and https URLs are allowed, not {url!r}")


def request_headers(headers: dict[str, Any] | None) -> dict[str, str]:
    """The model's headers as strings, without the ones it may not set.

    Raises:
        ToolError: too many headers, or one of :data:`FORBIDDEN_HEADERS`.
    """
    if not headers:
        return {}
    if len(headers) > MAX_HEADER_COUNT:
        raise ToolError(f"at most {MAX_HEADER_COUNT} headers may be sent")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if name.strip().lower() in FORBIDDEN_HEADERS:
            raise ToolError(f"header {name!r} may not be set by a tool call")
        out[str(name)] = str(value)
    return out


class GuardedHTTP:
    """One pooled, guarded client per tool, made on first use and closed with the agent."""

    def __init__(
        self,
        guard: SSRFGuard,
        config: NetworkConfig,
        *,
        user_agent: str,
        follow_redirects: bool,
    ) -> None:
        self.guard = guard
        self.config = config
        self._user_agent = user_agent
        self._follow = follow_redirects
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = guarded_client(
                self.guard,
                timeout=self.config.timeout_seconds,
                follow_redirects=self._follow,
                max_redirects=self.config.max_redirects,
                headers={"User-Agent": self._user_agent},
                event_hooks={"request": [self._before_request]},
            )
        return self._client

    async def _before_request(self, request: httpx.Request) -> None:
        check_scheme_and_host(request, self.config.allowed_hosts)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(self, method: str, url: str, **kwargs: Any) -> BoundedResponse:
        """Send one request and read at most ``max_response_bytes`` of its body.

        Raises:
            BlockedDestination: the URL (or a redirect) is refused by the guard.
            ToolError: redirects, timeout or transport failure, in words the model can use.
        """
        check_url_shape(url)
        limit = self.config.max_response_bytes
        try:
            async with self.client().stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        break
        except httpx.TooManyRedirects:
            raise ToolError(f"more than {self.config.max_redirects} redirects") from None
        except httpx.TimeoutException:
            raise ToolError(f"timed out after {self.config.timeout_seconds:g}s") from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise ToolError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None
        return BoundedResponse(response, bytes(body[:limit]), truncated=len(body) > limit)


class BoundedResponse:
    """A response whose body was read up to the tool's limit."""

    def __init__(self, response: httpx.Response, body: bytes, *, truncated: bool) -> None:
        self.status_code = response.status_code
        self.url = str(response.url)
        self.headers = dict(response.headers)
        self.content_type = response.headers.get("content-type", "")
        self.encoding = response.encoding or "utf-8"
        self.body = body
        self.truncated = truncated

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")

    def note(self) -> str | None:
        """What to tell the model when the body was cut."""
        return f"body cut at {len(self.body)} bytes" if self.truncated else None
