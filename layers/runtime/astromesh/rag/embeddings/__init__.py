"""Embedders: ``onnx`` (local, from a packaged model) and remote ``openai_compat``,
``ollama`` and ``hf_tgi`` endpoints. Nothing heavy is imported until an embedder is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from astromesh.errors import ConfigurationError
from astromesh.rag.embeddings.base import Embedder, EmbeddingError, normalize

if TYPE_CHECKING:
    from astromesh.config.rag import EmbeddingsConfig

__all__ = ["Embedder", "EmbeddingError", "build_embedder", "normalize"]


def build_embedder(config: EmbeddingsConfig, *, env: Mapping[str, str] | None = None) -> Embedder:
    """The embedder a pipeline's ``spec.embeddings`` names.

    Raises:
        ConfigurationError: a remote provider without ``endpoint``, an ``api_key_env`` that is
            not set, or the onnx model/its packages missing.
    """
    if config.provider == "onnx":
        from astromesh.rag.embeddings.onnx import OnnxEmbedder

        return OnnxEmbedder(config.model, dimension=config.dimension, batch_size=config.batch_size)
    from astromesh.rag.embeddings.remote import (
        OllamaEmbedder,
        OpenAICompatEmbedder,
        TEIEmbedder,
    )

    api_key = None
    if config.api_key_env:
        api_key = (env or {}).get(config.api_key_env)
        if not api_key:
            raise ConfigurationError(
                f"embeddings.api_key_env names {config.api_key_env}, which is not set"
            )
    kinds = {
        "openai_compat": OpenAICompatEmbedder,
        "ollama": OllamaEmbedder,
        "hf_tgi": TEIEmbedder,
    }
    return kinds[config.provider](
        config.model,
        endpoint=config.endpoint,
        api_key=api_key,
        dimension=config.dimension,
        batch_size=config.batch_size,
    )
