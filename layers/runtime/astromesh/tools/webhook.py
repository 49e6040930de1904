"""Webhook tools: an HTTP call whose JSON body is the model's arguments.

YAML (``type: webhook``): ``url``, ``method`` (POST by default), ``headers``,
``timeout_seconds``, ``secret_env`` and ``allow_private_network``.

- **Body.** POST, PUT, PATCH and DELETE send the arguments as a JSON body; GET sends them
  as the query string (nested values JSON-encoded), since GET bodies are dropped by many
  servers and proxies.
- **Signature.** With ``secret_env`` set, each attempt carries
  ``X-Astromesh-Timestamp: <unix seconds>`` and
  ``X-Astromesh-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + payload)>``,
  where ``payload`` is the raw body bytes (for GET: the raw query string). Signing the
  timestamp lets a receiver refuse replays; :func:`verify_signature` is the receiver's side.
- **Retries.** Only idempotent methods (GET, PUT, DELETE) are retried, at most
  :data:`MAX_ATTEMPTS` times in all, on connection failures, timeouts, 429 and 5xx, with
  exponential backoff (``Retry-After`` honoured up to :data:`MAX_BACKOFF_SECONDS`). A POST
  or PATCH that may have reached the server is never sent twice.
- **SSRF.** Connections go through :mod:`astromesh.tools.ssrf`: resolved, checked and
  pinned; redirects are not followed (a webhook answers, it does not send us elsewhere).
- **Failures** (a refused address, an HTTP error, a timeout) become failed tool results the
  model can read; the response body is cut at :data:`MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

from astromesh.errors import ConfigurationError, ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.ssrf import SSRFGuard, guarded_client

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Astromesh-Signature"
TIMESTAMP_HEADER = "X-Astromesh-Timestamp"
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 3
BASE_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 4.0
MAX_RESPONSE_BYTES = 1_000_000


def sign(secret: str, timestamp: str, payload: bytes) -> str:
    """The ``X-Astromesh-Signature`` value for ``payload`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    *,
    timestamp: str,
    signature: str,
    payload: bytes,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """The receiver's check: the signature matches and the timestamp is recent.

    Compares in constant time; a timestamp further than ``tolerance_seconds`` from ``now``
    (either way) fails, so a captured request cannot be replayed later.
    """
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, payload), signature)


class WebhookTool(Tool):
    """Calls one HTTP endpoint with the model's arguments."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        description: str = "",
        parameters: dict[str, Any] | None = None,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float = 30.0,
        secret: str | None = None,
        guard: SSRFGuard | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        base_backoff_seconds: float = BASE_BACKOFF_SECONDS,
    ) -> None:
        super().__init__(
            name=name,
            description=description or f"Call the {name} webhook",
            parameters=parameters or {"type": "object", "properties": {}},
        )
        self.url = url
        self.method = method.upper()
        self.headers = dict(headers or {})
        self.timeout_seconds = timeout_seconds
        self._secret = secret
        self.guard = guard or SSRFGuard()
        self.max_attempts = max_attempts if self.method in IDEMPOTENT_METHODS else 1
        self.base_backoff_seconds = base_backoff_seconds
        self.guard.check_literal(url)
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_config(
        cls, cfg: Any, *, env: Mapping[str, str], guard: SSRFGuard | None = None
    ) -> WebhookTool:
        """Build from a ``type: webhook`` config; the secret is read from ``env`` now.

        Raises:
            ConfigurationError: ``secret_env`` names an unset variable, or the URL's host
                is a refused IP literal.
        """
        secret = None
        if cfg.secret_env:
            secret = env.get(cfg.secret_env)
            if not secret:
                raise ConfigurationError(
                    f"tool {cfg.name!r}: secret_env {cfg.secret_env!r} is not set"
                )
        guard = guard or SSRFGuard(allow_private_network=cfg.allow_private_network)
        try:
            return cls(
                cfg.name,
                url=cfg.url,
                description=cfg.description,
                parameters=cfg.json_schema(),
                method=cfg.method,
                headers=cfg.headers,
                timeout_seconds=cfg.timeout_seconds,
                secret=secret,
                guard=guard,
            )
        except ToolError as exc:
            raise ConfigurationError(f"tool {cfg.name!r}: {exc.message}") from None

    def _http(self) -> httpx.AsyncClient:
        # Created on first use and kept: a warm Lambda or the local server reuses connections.
        if self._client is None or self._client.is_closed:
            self._client = guarded_client(self.guard, timeout=self.timeout_seconds)
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (the registry calls this when the agent closes)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def build_request(self, arguments: dict[str, Any]) -> httpx.Request:
        """The request for ``arguments``, signed with a fresh timestamp when a secret is set."""
        headers = {"User-Agent": "astromesh-webhook", **self.headers}
        if self.method == "GET":
            params = {
                key: value if isinstance(value, str) else json.dumps(value)
                for key, value in arguments.items()
            }
            request = self._http().build_request("GET", self.url, params=params, headers=headers)
            payload = request.url.query
        else:
            payload = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
            request = self._http().build_request(
                self.method, self.url, content=payload, headers=headers
            )
        if self._secret is not None:
            timestamp = str(int(time.time()))
            request.headers[TIMESTAMP_HEADER] = timestamp
            request.headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, payload)
        return request

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._send(self.build_request(arguments))
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.max_attempts:
                    raise ToolError(
                        f"{self.method} {self.url} failed after {attempt} attempt(s): "
                        f"{_describe(exc)}"
                    ) from exc
            else:
                if response.status_code < 400:
                    return response.data
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_attempts:
                    raise ToolError(
                        f"{self.method} {self.url} answered HTTP {response.status_code}"
                        + (f": {response.text[:500]}" if response.text else "")
                    )
                retry_after = response.retry_after
            delay = self._backoff(attempt, retry_after)
            logger.info(
                "tool=<%s> run_id=<%s> attempt=<%d> | retrying in %.2fs",
                self.name,
                context.run_id,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    async def _send(self, request: httpx.Request) -> _Answer:
        response = await self._http().send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return _Answer.of(response, bytes(body[:MAX_RESPONSE_BYTES]))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_BACKOFF_SECONDS)
        delay = self.base_backoff_seconds * 2 ** (attempt - 1)
        return min(delay * (0.5 + random.random() / 2), MAX_BACKOFF_SECONDS)


class _Answer:
    """What the tool needs from a response, read once (bounded)."""

    def __init__(self, status_code: int, text: str, data: Any, retry_after: float | None) -> None:
        self.status_code = status_code
        self.text = text
        self.data = data
        self.retry_after = retry_after

    @classmethod
    def of(cls, response: httpx.Response, body: bytes) -> _Answer:
        text = body.decode(response.encoding or "utf-8", errors="replace")
        data: Any = text
        if "json" in response.headers.get("content-type", "") and body:
            try:
                data = json.loads(text)
            except ValueError:
                data = text
        retry_after: float | None = None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return cls(response.status_code, text, data, retry_after)


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
