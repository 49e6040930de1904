"""The one interface every model provider implements.

A provider is one file in this package subclassing :class:`Model`; it only has to implement
:meth:`Model.stream`. Non-streaming calls, timing and argument plumbing are written here once;
a provider whose API answers whole in one response overrides :meth:`Model.complete` with that
request, which costs far less than a stream when nobody reads the tokens.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from astromesh.errors import ProviderError
from astromesh.models.catalog import KNOWN_CAPABILITIES, Capabilities, lookup
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Everything needed to construct one provider for one model.

    Resolved by the runtime from an agent's ``spec.model`` candidate and any matching
    ``ProviderConfig`` entry, so providers never read YAML or environment variables themselves.

    Attributes:
        provider_type: registry name (``openai_compat``, ``ollama``, ``llamacpp``, ...).
        model: the backend's model name, or for ``llamacpp`` a GGUF path or ``embedded``.
        endpoint: base URL; ``None`` means the provider's documented default.
        api_key: the secret itself (already read from ``api_key_env``); never logged.
        params: default sampling parameters from the agent file.
        timeout_seconds: per-request timeout for HTTP providers.
        name: the configured provider name (``openai`` in a ProviderConfig), for usage lines.
        options: provider-specific extras (``n_ctx``, ``n_threads`` for llama.cpp, ``api``
            for TGI, ...). ``capabilities`` (a mapping or a list of names) overrides what the
            router believes the model can do; see :attr:`Model.capabilities`.
        health_check_interval: seconds after which the router wants fresh evidence that the
            backend is up before calling it (a probe, see :mod:`astromesh.models.health`);
            ``None`` means no health checks for this model.
        guard: an SSRF guard (:class:`astromesh.tools.ssrf.SSRFGuard`) every connection of
            an HTTP provider goes through, redirects and health probes included; set for the
            candidates of agents registered through the API. ``None``: direct connections.
    """

    provider_type: str
    model: str
    endpoint: str | None = None
    api_key: str | None = field(default=None, repr=False)
    params: GenerationParams = field(default_factory=GenerationParams)
    timeout_seconds: float = 60.0
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    health_check_interval: float | None = None
    guard: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The provider name shown in usage lines and errors."""
        return self.name or self.provider_type


class Model(ABC):
    """A chat model behind some backend.

    Attributes:
        provider_type: the ``type``/``provider`` name used in YAML (``ollama``, ``openai_compat``).
        supports_native_tools: whether the backend accepts tool definitions and returns
            structured tool calls. Patterns fall back to a text protocol when it does not.
    """

    provider_type: ClassVar[str]
    supports_native_tools: bool = True
    default_capabilities: ClassVar[Capabilities] = Capabilities(json_mode=True, context_window=8192)
    """What a model of this provider can do when nothing more specific is known; ``tools``
    always follows :attr:`supports_native_tools`."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.model = settings.model
        self.params = settings.params

    @abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Yield ``TextDelta`` pieces as they are generated, then one final ``ModelResponse``.

        Raises:
            ProviderError: with ``retryable`` set for failures another candidate could survive.
        """

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> ModelResponse:
        """The whole answer, for a caller that shows no tokens: by default :meth:`stream` run
        to its end (an in-process model generates the same either way); HTTP providers ask
        their server for one non-streamed response instead."""
        final: ModelResponse | None = None
        async for event in self.stream(messages, tools=tools, params=params):
            if isinstance(event, ModelResponse):
                final = event
        if final is None:
            raise ProviderError(
                "stream ended without a final response",
                provider=self.settings.label,
                model=self.model,
                retryable=True,
            )
        return final

    @property
    def capabilities(self) -> Capabilities:
        """What the router may send this model (``capability_match``).

        Layered so a config stays short: the provider class's defaults, then the entry for a
        well-known model name (:data:`~astromesh.models.catalog.KNOWN_CAPABILITIES`), then
        ``options["capabilities"]`` given for this provider/model. Computed once per instance
        (settings are frozen): the router reads it on every request.
        """
        cached: Capabilities | None = self.__dict__.get("_capabilities")
        if cached is not None:
            return cached
        caps = Capabilities(
            chat=self.default_capabilities.chat,
            tools=self.supports_native_tools,
            vision=self.default_capabilities.vision,
            json_mode=self.default_capabilities.json_mode,
            context_window=self.default_capabilities.context_window,
        )
        known = lookup(KNOWN_CAPABILITIES, self.model)
        if known is not None:
            caps = caps.updated(
                {k: v for k, v in known.items() if k != "tools" or self.supports_native_tools}
            )
        configured = self.settings.options.get("capabilities")
        if configured:
            caps = caps.updated(configured)
        self.__dict__["_capabilities"] = caps
        return caps

    async def health(self) -> bool:
        """Whether the backend answers; providers override with a cheap endpoint."""
        return True

    async def probe(self, timeout: float) -> bool:
        """Whether the router should call this model now: its pre-call health check.

        Unlike :meth:`health` (a report: anything but a clear "ok" is a no), a probe answers
        "is it worth calling", within ``timeout`` seconds; HTTP providers override it with a
        lenient check of their health endpoint. In-process models answer :meth:`health`.
        """
        return await self.health()

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections; called by ``AgentRuntime.close``."""

    def effective_params(self, override: GenerationParams | None) -> GenerationParams:
        return self.params.merged(override)


class StreamTimer:
    """Measures a call's latency so each provider need not re-derive it."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0


__all__ = ["Model", "ProviderSettings", "StreamTimer", "TextDelta"]
