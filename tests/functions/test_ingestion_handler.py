"""The ingestion Lambda against moto's S3: index on ObjectCreated, nothing new on a repeat,
replace on change, delete on ObjectRemoved, FAISS index round-tripped through S3."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
KEY = "local-faq/guides/getting started.md"


def load_handler():
    spec = importlib.util.spec_from_file_location(
        "ingestion_handler", ROOT / "functions" / "ingestion" / "handler.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def event(name: str) -> dict:
    return json.loads((ROOT / "events" / "ingestion" / f"{name}.json").read_text())


@pytest.fixture
def handler(tmp_path, monkeypatch):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "faq.rag.yaml").write_text(
        f"""apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: local-faq}}
spec:
  chunking: {{strategy: markdown, chunk_size: 200, overlap: 0}}
  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}
  vector_store: {{backend: faiss, path: {tmp_path / "tmp" / "faq.faiss"}}}
"""
    )
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(agents))
    monkeypatch.setenv("ASTROMESH_FAISS_S3_URI", "s3://astromesh-indexes/local-faq.faiss")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="astromesh-documents")
        s3.create_bucket(Bucket="astromesh-indexes")
        yield load_handler(), s3


def test_ingestion_is_idempotent_and_follows_changes(handler):
    module, s3 = handler
    s3.put_object(
        Bucket="astromesh-documents", Key=KEY, Body=b"# Start\nInstall it.\n# Use\nRun it.\n"
    )
    first = module.handler(event("object_created"), None)["results"]
    assert first == [
        {"source": f"s3://astromesh-documents/{KEY}", "pipeline": "local-faq",
         "status": "indexed", "chunks": 2}
    ]  # fmt: skip
    assert s3.head_object(Bucket="astromesh-indexes", Key="local-faq.faiss")
    etag = s3.head_object(Bucket="astromesh-indexes", Key="local-faq.faiss")["ETag"]
    assert module.handler(event("object_created"), None)["results"][0]["status"] == "unchanged"
    assert s3.head_object(Bucket="astromesh-indexes", Key="local-faq.faiss")["ETag"] == etag

    s3.put_object(Bucket="astromesh-documents", Key=KEY, Body=b"# Start\nInstall it twice.\n")
    again = module.handler(event("object_created"), None)["results"][0]
    assert (again["status"], again["chunks"]) == ("replaced", 1)
    import asyncio

    pipeline = module._PIPELINES["local-faq"]
    results = asyncio.run(pipeline.query("how to install", top_k=5))
    assert [r["content"] for r in results] == ["# Start\nInstall it twice."]

    removed = module.handler(event("object_removed"), None)["results"][0]
    assert (removed["status"], removed["chunks"]) == ("deleted", 1)
    assert asyncio.run(pipeline.store.count()) == 0
