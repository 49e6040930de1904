"""A local ONNX Runtime model for the embedding and classification roles.

``model`` names a registry artifact (``minilm-l6-v2``, ``topic-classifier@1.2.0``; see
:mod:`astromesh.models.artifacts`) or a path to a ``.onnx`` file, in which case
``options["tokenizer"]`` gives its ``tokenizer.json``. The file is loaded once per process.

What it does:

- :meth:`OnnxModel.embed`: sentence embeddings of an encoder (``last_hidden_state``
  mean-pooled over the attention mask and L2-normalised, as sentence-transformers does), or the
  model's own pooled output when it has a 2-D one.
- :meth:`OnnxModel.classify`: a classifier artifact's softmax over its ``labels`` when its
  output has one logit per label; otherwise zero-shot, by cosine similarity between the text's
  embedding and each label's.

What it does not do: chat generation. No small generative ONNX model ships in a wheel we can
depend on, so the router never plans an ``onnx`` candidate for chat (its ``chat`` capability
is false) and :meth:`OnnxModel.stream` says so. onnxruntime, numpy and tokenizers come from
the ``ml`` extra and are imported on first use, never at import time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astromesh.errors import ConfigurationError, ProviderError
from astromesh.models.artifacts import ArtifactSpec, ModelArtifact, ModelRegistry, load_once
from astromesh.models.base import Model, ProviderSettings
from astromesh.models.catalog import Capabilities
from astromesh.models.types import GenerationParams, Message, StreamEvent, ToolDefinition

ML_EXTRA_HINT = "pip install 'astromesh[ml]'"


@dataclass(frozen=True)
class Classification:
    """A label and its score; ``kind`` says what the score is."""

    label: str
    score: float
    kind: str
    """``probability`` (softmax of a classifier's logits) or ``similarity`` (cosine, zero-shot)."""


class OnnxModel(Model):
    """An embedding or classification model run in-process by ONNX Runtime."""

    provider_type = "onnx"
    supports_native_tools = False
    default_capabilities = Capabilities(chat=False, context_window=512)

    def __init__(
        self, settings: ProviderSettings, *, registry: ModelRegistry | None = None
    ) -> None:
        super().__init__(settings)
        self.registry = registry or ModelRegistry.from_env()
        self.artifact = self._artifact(settings)
        self._model_path: Path | None = None
        self._tokenizer_path: Path | None = None

    def _artifact(self, settings: ProviderSettings) -> ModelArtifact:
        """The artifact for ``settings.model``: a registry name, or a path to a .onnx file.

        Raises:
            ConfigurationError: nothing is configured, or the named file does not exist.
        """
        name = settings.model.strip()
        options = settings.options
        if not name:
            raise ConfigurationError(
                "onnx provider: no model file configured; set `model` to a registry artifact"
                f" ({', '.join(self.registry.names()) or 'none registered'}) or a path to a"
                " .onnx file"
            )
        if name.endswith(".onnx") or os.sep in name:
            path = Path(os.path.expandvars(name)).expanduser().resolve()
            if not path.is_file():
                raise ConfigurationError(
                    f"onnx model {name!r}: expected ONNX file {path} does not exist"
                )
            tokenizer = options.get("tokenizer")
            spec = ArtifactSpec(
                name=path.stem,
                version="local",
                uri=str(path),
                sha256=options.get("sha256"),
                task=options.get("task", "embedding"),
                tokenizer=str(tokenizer) if tokenizer else None,
                labels=tuple(options.get("labels") or ()),
                max_length=int(options.get("max_length", 256)),
            )
            return ModelArtifact(spec, path.parent, f"agent file ({name})")
        return self.registry.get(name)

    # -- loading (once per process) ------------------------------------------------------------

    def _session(self) -> Any:
        if self._model_path is None:
            self._model_path = self.registry.local_path(self.artifact)
        return load_once("onnx", self._model_path, _load_session)

    def _tokenizer(self) -> Any:
        if self._tokenizer_path is None:
            path = self.registry.tokenizer_path(self.artifact)
            if path is None:
                raise ConfigurationError(
                    f"onnx model {self.artifact.ref}: no tokenizer configured; set the"
                    " artifact's `tokenizer` (or options.tokenizer) to a tokenizer.json"
                )
            self._tokenizer_path = path
        max_length = self.artifact.spec.max_length
        return load_once(
            f"tokenizer:{max_length}", self._tokenizer_path, _tokenizer_loader(max_length)
        )

    # -- inference ------------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text (computed in a worker thread)."""
        if not texts:
            return []
        vectors = await asyncio.to_thread(self._embed_sync, list(texts))
        return [list(map(float, row)) for row in vectors]

    async def classify(
        self, text: str, labels: Sequence[str] | None = None
    ) -> list[Classification]:
        """Scores of ``labels`` (the artifact's own when omitted), best first.

        Raises:
            ConfigurationError: no labels anywhere.
        """
        names = list(labels or self.artifact.spec.labels)
        if not names:
            raise ConfigurationError(
                f"onnx model {self.artifact.ref}: classify needs labels (pass them or declare"
                " `labels` on the artifact)"
            )
        return await asyncio.to_thread(self._classify_sync, text, names)

    def _run(self, texts: list[str]) -> tuple[Any, Any]:
        """The model's first output and the attention mask, for a batch of texts."""
        import numpy as np

        session, tokenizer = self._session(), self._tokenizer()
        encodings = tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        wanted = {i.name for i in session.get_inputs()}
        output = session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
        return output, feeds["attention_mask"]

    def _embed_sync(self, texts: list[str]) -> Any:
        import numpy as np

        output, mask = self._run(texts)
        if output.ndim == 3:  # token states: mean over real tokens
            weights = mask[:, :, None].astype(output.dtype)
            output = (output * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(output, axis=1, keepdims=True)
        return output / np.clip(norms, 1e-12, None)

    def _classify_sync(self, text: str, labels: list[str]) -> list[Classification]:
        import numpy as np

        if self.artifact.spec.task == "classification":
            output, _ = self._run([text])
            if output.ndim == 2 and output.shape[1] == len(labels):
                logits = output[0] - output[0].max()
                probs = np.exp(logits) / np.exp(logits).sum()
                scored = [
                    Classification(lab, float(p), "probability")
                    for lab, p in zip(labels, probs, strict=True)
                ]
                return sorted(scored, key=lambda c: c.score, reverse=True)
        vectors = self._embed_sync([text, *labels])
        similarities = vectors[1:] @ vectors[0]
        scored = [
            Classification(lab, float(s), "similarity")
            for lab, s in zip(labels, similarities, strict=True)
        ]
        return sorted(scored, key=lambda c: c.score, reverse=True)

    # -- the Model interface --------------------------------------------------------------------

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Always fails: this provider embeds and classifies; it does not generate chat."""
        raise ProviderError(
            f"{self.artifact.ref} is an ONNX {self.artifact.spec.task} model: it embeds and"
            " classifies text but cannot generate chat; give this role a chat provider"
            " (llamacpp, ollama, openai_compat, vllm, hf_tgi)",
            provider=self.settings.label,
            model=self.model,
            retryable=False,
        )
        yield  # pragma: no cover - makes this an async generator

    async def health(self) -> bool:
        """Whether the artifact's file is usable here (present with the right checksum, or
        fetchable from S3)."""
        return self.registry.status(self.artifact).state in ("ready", "remote", "unverified")


def _load_session(path: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigurationError(f"the onnx provider needs onnxruntime ({ML_EXTRA_HINT})") from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer_loader(max_length: int) -> Any:
    def load(path: Path) -> Any:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(
                f"the onnx provider needs tokenizers ({ML_EXTRA_HINT})"
            ) from exc
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding()
        return tokenizer

    return load


__all__ = ["Classification", "OnnxModel"]
