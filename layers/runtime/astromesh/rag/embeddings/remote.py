"""Embedding endpoints over HTTP: OpenAI-compatible, Ollama and Hugging Face TEI.

Each backend is one request shape and one answer shape; the client, retries of transient
failures (connection errors, 408/429/5xx, with a short backoff) and the error messages are
shared. One ``httpx.AsyncClient`` per embedder keeps connections alive across batches.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Any

import httpx

from astromesh.errors import ConfigurationError
from astromesh.rag.embeddings.base import Embedder, EmbeddingError
from astromesh.rag.types import Vector

ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
EXCERPT_CHARS = 200


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class RemoteEmbedder(Embedder):
    """Shared HTTP flow; subclasses give the path, the request body and how to read vectors.

    Args:
        endpoint: base URL (``http://host:11434`` for Ollama, ``.../v1`` for OpenAI-style).
        api_key: sent as ``Authorization: Bearer``.
        timeout: seconds per request.
    """

    path: str

    def __init__(
        self,
        model: str,
        *,
        endpoint: str | None,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(model, dimension=dimension, batch_size=batch_size)
        if not endpoint:
            raise ConfigurationError(f"the {self.provider} embedder needs an endpoint")
        self.endpoint = endpoint.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                headers=headers,
            )
        return self._client

    @abstractmethod
    def _body(self, texts: list[str]) -> dict[str, Any]:
        """The JSON request for one batch."""

    @abstractmethod
    def _vectors(self, answer: Any) -> list[Vector]:
        """The vectors in a JSON answer, in request order."""

    async def _embed_batch(self, texts: list[str]) -> list[Vector]:
        url = self.endpoint + self.path
        label = f"{self.provider}/{self.model}"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await self._http().post(url, json=self._body(texts))
            except httpx.TransportError as exc:
                if attempt == ATTEMPTS:
                    raise EmbeddingError(f"{label}: cannot reach {url}: {exc!r}") from exc
            else:
                if response.status_code == 200:
                    try:
                        return self._vectors(response.json())
                    except (ValueError, KeyError, TypeError, IndexError) as exc:
                        excerpt = response.text[:EXCERPT_CHARS]
                        raise EmbeddingError(
                            f"{label}: unexpected answer from {url}: {excerpt}"
                        ) from exc
                if not _retryable(response.status_code) or attempt == ATTEMPTS:
                    raise EmbeddingError(
                        f"{label}: {url} answered {response.status_code}: "
                        f"{response.text[:EXCERPT_CHARS]}"
                    )
            await asyncio.sleep(BACKOFF_SECONDS * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class OpenAICompatEmbedder(RemoteEmbedder):
    """``POST {endpoint}/embeddings`` (OpenAI, vLLM, llama.cpp server, LiteLLM...)."""

    provider = "openai_compat"
    path = "/embeddings"

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "input": texts}

    def _vectors(self, answer: Any) -> list[Vector]:
        items = sorted(answer["data"], key=lambda item: item["index"])
        return [[float(x) for x in item["embedding"]] for item in items]


class OllamaEmbedder(RemoteEmbedder):
    """``POST {endpoint}/api/embed`` (Ollama's batched embedding API)."""

    provider = "ollama"
    path = "/api/embed"

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "input": texts}

    def _vectors(self, answer: Any) -> list[Vector]:
        return [[float(x) for x in vector] for vector in answer["embeddings"]]


class TEIEmbedder(RemoteEmbedder):
    """``POST {endpoint}/embed`` (Hugging Face text-embeddings-inference; ``hf_tgi``)."""

    provider = "hf_tgi"
    path = "/embed"

    def _body(self, texts: list[str]) -> dict[str, Any]:
        return {"inputs": texts, "normalize": True, "truncate": True}

    def _vectors(self, answer: Any) -> list[Vector]:
        return [[float(x) for x in vector] for vector in answer]
