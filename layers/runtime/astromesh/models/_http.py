"""Plumbing shared by the HTTP providers (OpenAI-compatible, Ollama).

Both providers stream a chat completion over one POST (or ask for it whole, when nobody reads
tokens) and differ only in their wire format, so everything else lives here once: the lazily
created ``httpx.AsyncClient``, bounded reads of answers (whole or streamed, line by line) and
of error bodies (:data:`MAX_RESPONSE_BYTES`, :data:`MAX_ERROR_BODY_BYTES`), the mapping of
transport failures and HTTP statuses to :class:`ProviderError` with the right ``retryable``
flag (what the router uses to decide whether to try the next candidate) and the server's
``Retry-After`` hint (:func:`retry_after_seconds`, carried as ``ProviderError.retry_after``),
the health probe the router makes before calling a candidate (:meth:`HttpModel.probe`), key
redaction, and the token estimate used when a backend reports no usage.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import datetime
import email.utils
import functools
import itertools
import json
import math
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx

from astromesh.errors import ProviderError, ProviderTimeout
from astromesh.models.base import Model, ProviderSettings
from astromesh.models.estimate import (  # noqa: F401 - the providers import them from here
    completion_texts,
    estimate_tokens,
    prompt_texts,
    resolve_usage,
)
from astromesh.models.types import ToolDefinition

MAX_CONNECT_TIMEOUT = 10.0
"""A refused or unroutable host should fail fast even when reads may legitimately take long."""

EXCERPT_CHARS = 200
"""How much of an error body goes into a message: enough to diagnose, short enough to log."""

REDACTED = "***"

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Largest answer read, decoded, whole or streamed: far above any completion (128k tokens of
JSON-escaped text is a few MB, its stream a few times that), and a backend (or whatever
answers at a registered agent's endpoint) sending more, or a stream that never ends, is
refused instead of filling the memory."""

MAX_ERROR_BODY_BYTES = 64 * 1024
"""How much of an error answer is read: its message is cut to :data:`EXCERPT_CHARS` anyway."""

JSON_BODY = {"Content-Type": "application/json"}
"""Headers of a POST whose JSON body is already encoded (httpx sets them only for ``json=``)."""

MAX_RETRY_AFTER = 3600.0
"""Longest ``Retry-After`` honoured, in seconds: a wrong or hostile header must not shut a
candidate out for days (the circuit breaker keeps it out that long on every instance)."""


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One verified TLS context for every provider in the process.

    Loading the CA bundle takes ~100 ms; httpx would do it for each client, i.e. per provider
    instance and again whenever a client is re-created for a new event loop.
    """
    return httpx.create_ssl_context()


def server_root(endpoint: str) -> str:
    """The server's base URL without the OpenAI API's ``/v1`` segment.

    vLLM, llama.cpp server and TGI serve ``/health`` at the root, beside ``/v1``.
    """
    endpoint = endpoint.rstrip("/")
    return endpoint[: -len("/v1")] if endpoint.endswith("/v1") else endpoint


def is_retryable_status(status: int) -> bool:
    """Whether another attempt (or another candidate) could succeed after this HTTP status.

    Rate limits, request timeouts and server errors are transient; any other 4xx means the
    request itself is wrong and would fail the same way again.
    """
    return status in (408, 429) or status >= 500


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the server asks us to wait before the next request, in seconds.

    Reads ``retry-after-ms`` first (OpenAI and Azure OpenAI send it beside ``Retry-After``,
    with more precision), then ``Retry-After`` as delta-seconds (fractions accepted, as some
    servers send them) or as an HTTP date (RFC 9110 section 10.2.3), counted from ``now``
    (``time.time()``; a date in the past means 0). The result is clamped to
    ``[0, MAX_RETRY_AFTER]``; ``None`` when there is no usable hint. ``headers`` is looked up
    with lower-case names (``httpx.Headers`` is case-insensitive).
    """
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return _clamp(millis / 1000.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _finite(raw)
    if seconds is not None:
        return _clamp(seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322: no zone information): HTTP dates are GMT
        when = when.replace(tzinfo=datetime.UTC)
    return _clamp(when.timestamp() - (time.time() if now is None else now))


def _finite(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict, whatever the model produced.

    Models sometimes emit invalid or non-object JSON; instead of failing the whole call, the raw
    text is kept under ``_raw`` so the tool layer can answer the model with a structured error
    and let it correct itself.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def error_excerpt(body: bytes | str) -> str:
    """A short, single-line description of an error body.

    Understands the usual JSON shapes (``{"error": {"message": ...}}`` from OpenAI-compatible
    servers, ``{"error": "..."}`` from Ollama, ``{"detail": ...}`` from FastAPI-based ones) and
    falls back to the raw text.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        text = _message_from_json(data) or text
    collapsed = " ".join(text.split())
    if len(collapsed) > EXCERPT_CHARS:
        return collapsed[: EXCERPT_CHARS - 3] + "..."
    return collapsed or "(empty body)"


def _message_from_json(data: dict[str, Any]) -> str | None:
    for key in ("error", "detail", "message"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("message") or json.dumps(value)
        if isinstance(value, str) and value:
            return value
    return None


def function_tool(tool: ToolDefinition) -> dict[str, Any]:
    """A tool definition in the ``{"type": "function", ...}`` shape both APIs accept."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def is_json_response(response: httpx.Response) -> bool:
    """Whether the server answered with one JSON document (it ignored ``stream: true``)."""
    content_type = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "application/json"


def is_event_stream(response: httpx.Response) -> bool:
    """Whether the server streamed server-sent events (it ignored ``stream: false``)."""
    content_type = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


async def drain(rest: AsyncIterator[Any]) -> None:
    """Consume what follows the end marker so the connection can go back to the pool.

    Breaking off a response mid-body makes httpx drop the connection, which costs a new TCP
    (and TLS) handshake on the next call. The answer is already complete here, so a failure
    while draining is ignored: the connection is then simply dropped.
    """
    with contextlib.suppress(httpx.HTTPError, ProviderError):
        async for _ in rest:
            pass


class _ResponseCookies(httpx.Cookies):
    """The client's cookie jar, read only from responses that set cookies.

    httpx hands every response to the standard library's cookie jar, which builds a
    ``urllib`` request from the URL first: about 25 microseconds a call, on every model call,
    for the many backends (vLLM, llama.cpp, Ollama, a local gateway) that never set one. A
    response with ``Set-Cookie`` (a hosted API's load balancer) is kept exactly as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def _with_response_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """``client`` with :class:`_ResponseCookies` as its (empty, new) jar."""
    client._cookies = _ResponseCookies()  # httpx has no hook for the class of its jar
    return client


class LineSplitter:
    """Text in, complete lines out, split as ``str.splitlines`` splits them (what httpx's
    ``aiter_lines`` does): ``\\r\\n`` across two pieces is one line end, and the last line
    is given once the text ends, whether or not a line end follows it."""

    _ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._trailing_cr = False

    def feed(self, text: str, *, final: bool = False) -> list[str]:
        """The lines ``text`` completes; with ``final``, the rest too."""
        if self._trailing_cr:  # a CR ending the last piece may be half of a CRLF
            text = "\r" + text
            self._trailing_cr = False
        if text.endswith("\r") and not final:
            self._trailing_cr = True
            text = text[:-1]
        if not text:
            return self._flush() if final else []
        ended = text[-1] in self._ENDS
        lines = text.splitlines()
        if self._partial:
            lines[0] = "".join(self._partial) + lines[0]
            self._partial = []
        if not ended and not final:
            self._partial = [lines.pop()]
        return lines

    def _flush(self) -> list[str]:
        rest, self._partial = "".join(self._partial), []
        return [rest] if rest else []


class HttpModel(Model):
    """Base of the providers that talk to a backend over HTTP.

    Subclasses set :attr:`default_endpoint` and :attr:`health_path` and implement ``stream``
    with :meth:`_post_stream`, raising errors made by :meth:`_error`.
    """

    default_endpoint: ClassVar[str]
    health_path: ClassVar[str]

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.endpoint = (settings.endpoint or self.default_endpoint).rstrip("/")
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._call_ids = itertools.count(1)
        self._urls: dict[str, httpx.URL] = {}

    # -- client -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        """Headers sent with every request: a bearer token when a key is configured.

        OpenAI-compatible APIs and Ollama's hosted API (or a proxy in front of Ollama) both
        authenticate this way.
        """
        headers = {"User-Agent": "astromesh"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        total = self.settings.timeout_seconds
        return httpx.Timeout(total, connect=min(MAX_CONNECT_TIMEOUT, total))

    def _http(self) -> httpx.AsyncClient:
        """The instance's client, created on first use.

        A client's pooled connections belong to the event loop that opened them, so a provider
        reused from another loop (a CLI or Lambda calling ``asyncio.run`` per request) gets a
        fresh client instead of failing on the stale pool.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            guard = self.settings.guard
            if guard is not None:
                from astromesh.tools.ssrf import guarded_client

                self._client = guarded_client(
                    guard, timeout=self._timeout(), headers=self._headers()
                )
            else:
                self._client = httpx.AsyncClient(
                    timeout=self._timeout(), headers=self._headers(), verify=shared_ssl_context()
                )
            _with_response_cookies(self._client)
            self._client_loop = loop
        return self._client

    def _url(self, path: str) -> httpx.URL:
        """``endpoint + path`` parsed once: httpx parses a URL string again on every request
        (about 30 microseconds)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.endpoint + path)
        return url

    async def aclose(self) -> None:
        """Close the pooled connections; the provider stays usable (a new client is made).

        A client left over from an event loop that has since closed cannot be closed from
        this one (its sockets belong to the dead loop); it is dropped for the GC instead.
        """
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and not client.is_closed and loop is asyncio.get_running_loop():
            await client.aclose()

    def _health_url(self) -> str:
        """Where :meth:`health` looks; servers with a root ``/health`` override this."""
        return self.endpoint + self.health_path

    async def health(self) -> bool:
        """Whether the backend answers its cheap health or listing endpoint with 200."""
        try:
            response = await self._http().get(self._health_url())
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def probe(self, timeout: float) -> bool:
        """The router's pre-call check (see :mod:`astromesh.models.health`): ``GET`` the
        health endpoint with a short timeout.

        Unhealthy only when the server is unreachable, too slow, or answers a server error
        (5xx, 408): a 401/403/404 means the endpoint is not usable for checking (a gateway
        that does not expose ``/v1/models``, a key without the listing scope), and must not
        keep a model that chats fine from being called. A 429 is a live server rate-limiting
        us; the call itself will say how long to wait. The probe goes through the instance's
        pooled client, so a healthy answer leaves a warm connection for the call that follows.
        """
        try:
            response = await self._http().get(self._health_url(), timeout=timeout)
        except httpx.HTTPError:
            return False
        status = response.status_code
        return not (status >= 500 or status == 408)

    # -- requests -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _post_stream(
        self, path: str, body: dict[str, Any] | bytes, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """POST ``body`` (a dict to encode, or JSON already encoded: then ``headers`` carry
        its ``Content-Type``) and yield the streaming response once its status is known to
        be good.

        Transport failures raised while the caller reads the body are mapped here too, so a
        stream cut mid-way surfaces as a retryable :class:`ProviderError`. An error answer's
        body is read only up to :data:`MAX_ERROR_BODY_BYTES`.
        """
        content, data = (body, None) if isinstance(body, bytes) else (None, body)
        try:
            async with self._http().stream(
                "POST", self._url(path), content=content, json=data, headers=headers
            ) as response:
                if not response.is_success:
                    raise self._status_error(
                        response.status_code,
                        await self._read_body(response, MAX_ERROR_BODY_BYTES, cut=True),
                        response.headers,
                    )
                yield response
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    async def _post_whole(
        self, path: str, body: dict[str, Any] | bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[httpx.Response, bytes]:
        """POST ``body`` and return the good response with its whole body (a non-streamed
        call), read up to :data:`MAX_RESPONSE_BYTES`.

        Failures map as for :meth:`_post_stream`: a bad status by :meth:`_status_error`, a
        transport failure (a body cut off included) by :meth:`_transport_error`.
        """
        async with self._post_stream(path, body, headers) as response:
            try:
                return response, await self._read_body(response, MAX_RESPONSE_BYTES)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc

    async def _lines(
        self, response: httpx.Response, limit: int = MAX_RESPONSE_BYTES
    ) -> AsyncIterator[str]:
        """The streamed body's lines, split as ``response.aiter_lines()`` splits them, and
        refused like a whole answer once more than ``limit`` bytes (decoded) came in: a
        stream that never ends, or one endless line, cannot fill the memory."""
        decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
        lines = LineSplitter()
        async for chunk in self._bounded(response, limit):
            for line in lines.feed(decoder.decode(chunk)):
                yield line
        for line in lines.feed(decoder.decode(b"", final=True), final=True):
            yield line

    async def _bounded(
        self, response: httpx.Response, limit: int, *, cut: bool = False
    ) -> AsyncIterator[bytes]:
        """The body's decoded chunks, ``limit`` bytes of them at most: past it the answer is
        refused as too large (not retryable: the backend answered), or with ``cut`` it ends
        there (an error body, only excerpted); the rest is not read."""
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                if not cut:
                    raise self._too_large(limit)
                yield chunk[: len(chunk) - (size - limit)]
                return
            yield chunk

    async def _read_body(self, response: httpx.Response, limit: int, *, cut: bool = False) -> bytes:
        """The body, decoded, at most ``limit`` bytes of it (see :meth:`_bounded`); one
        declared larger is refused before any of it is read."""
        declared = response.headers.get("content-length", "")
        if not cut and declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        parts = [chunk async for chunk in self._bounded(response, limit, cut=cut)]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _too_large(self, limit: int) -> ProviderError:
        return self._error(f"response from {self.endpoint} larger than {limit} bytes")

    async def _read_json(self, response: httpx.Response) -> dict[str, Any]:
        """The whole body as a JSON object, for servers that answered without streaming."""
        return self._json_object(await self._read_body(response, MAX_RESPONSE_BYTES))

    def _json_object(self, body: bytes) -> dict[str, Any]:
        """``body`` as a JSON object, or a (non-retryable) error quoting it."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            raise self._error(f"malformed JSON response: {error_excerpt(body)}") from None
        if not isinstance(data, dict):
            raise self._error(f"unexpected JSON response: {error_excerpt(body)}")
        return data

    @contextlib.contextmanager
    def _parsing(self) -> Iterator[None]:
        """Around the reading of a whole answer: a field of the wrong type (a number for
        the content, a string for the tool calls) is a malformed answer, reported like
        malformed JSON, not an exception from deep inside the parser."""
        try:
            yield
        except (TypeError, AttributeError, KeyError, ValueError, RecursionError) as exc:
            raise self._error(f"malformed response from {self.endpoint}: {exc}") from None

    def _next_call_id(self) -> str:
        """An id for a tool call the backend sent without one; unique per provider instance."""
        return f"call_{next(self._call_ids)}"

    # -- errors -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, REDACTED) if key else text

    def _error(
        self,
        message: str,
        *,
        retryable: bool = False,
        status_code: int | None = None,
        timeout: bool = False,
        retry_after: float | None = None,
    ) -> ProviderError:
        """A provider error with this provider's label and model, the API key redacted."""
        cls = ProviderTimeout if timeout else ProviderError
        return cls(
            self._redact(message),
            provider=self.settings.label,
            model=self.model,
            retryable=retryable,
            status_code=status_code,
            retry_after=retry_after,
        )

    def _status_error(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """The error for a non-2xx answer, carrying the server's ``Retry-After`` when the
        failure is retryable (429, 503 and other 5xx: the hint is meaningless on a request
        that is wrong)."""
        retryable = is_retryable_status(status)
        hint = retry_after_seconds(headers) if retryable and headers is not None else None
        message = f"HTTP {status} from {self.endpoint}: {error_excerpt(body)}"
        if hint is not None:
            message += f" (Retry-After {hint:.1f}s)"
        return self._error(message, retryable=retryable, status_code=status, retry_after=hint)

    def _transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        """Map an httpx failure: network trouble and timeouts are retryable, the rest is not."""
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            return self._error(
                f"timed out after {self.settings.timeout_seconds:g}s talking to {self.endpoint}"
                f" ({type(exc).__name__})",
                retryable=True,
                timeout=True,
            )
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
            return self._error(f"connection to {self.endpoint} failed: {detail}", retryable=True)
        return self._error(f"request to {self.endpoint} failed: {detail}")

    def _cut_error(self) -> ProviderError:
        return self._error(
            "the stream ended before the response was complete (connection closed early)",
            retryable=True,
        )
