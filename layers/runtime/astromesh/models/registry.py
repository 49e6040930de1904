"""One registry of provider types: YAML ``provider``/``type`` name -> provider class.

Classes are imported on first use, so a Lambda that only talks to an OpenAI-compatible
endpoint never imports llama.cpp.
"""

from __future__ import annotations

import importlib
from difflib import get_close_matches

from astromesh.errors import ConfigurationError
from astromesh.models.base import Model, ProviderSettings

_PROVIDERS: dict[str, str] = {
    "openai_compat": "astromesh.models.openai_compat:OpenAICompatModel",
    # vLLM serves the OpenAI chat-completions API, with its own defaults and health check.
    "vllm": "astromesh.models.openai_compat:VLLMModel",
    "ollama": "astromesh.models.ollama:OllamaModel",
    # In-process GGUF, or llama.cpp's server when an endpoint is given.
    "llamacpp": "astromesh.models.llamacpp:LlamaCppModel",
    "hf_tgi": "astromesh.models.hf_tgi:TGIModel",
    "onnx": "astromesh.models.onnx:OnnxModel",
}

PROVIDER_TYPES: frozenset[str] = frozenset(_PROVIDERS)


def provider_class(provider_type: str) -> type[Model]:
    """Import and return the class registered for ``provider_type``."""
    try:
        target = _PROVIDERS[provider_type]
    except KeyError:
        hint = get_close_matches(provider_type, _PROVIDERS, n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        known = ", ".join(sorted(_PROVIDERS))
        raise ConfigurationError(
            f"unknown provider type {provider_type!r}{suffix}; known: {known}"
        ) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_model(settings: ProviderSettings) -> Model:
    """Build the provider for ``settings.provider_type``."""
    return provider_class(settings.provider_type)(settings)
