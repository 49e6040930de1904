"""RAG ingestion Lambda: S3 ObjectCreated -> read -> chunk -> embed -> index (idempotent).

Environment:
    ASTROMESH_AGENTS_DIR      folder of astromesh/v1 documents (the RAGPipeline ones matter)
    ASTROMESH_INGEST_PIPELINE pipeline to use; without it, the key's first folder names it
                              (``<pipeline>/any/path.md``)
    ASTROMESH_FAISS_S3_URI    for faiss pipelines: where the index lives in S3 (loaded into
                              the pipeline's local path before, saved back after changes)

The document id is ``file:s3://bucket/key``, so an object written again unchanged is not
re-embedded, and a changed one replaces its chunks. ObjectRemoved events delete them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from astromesh.coldstart import init_phase

with init_phase():  # the init without the cyclic GC, its objects frozen after (see module)
    from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from astromesh.config import load_path
    from astromesh.rag import RAGPipeline, build_pipeline, ingest_file

_PIPELINES: dict[str, RAGPipeline] = {}
"""Built pipelines, kept across warm invocations (the ONNX session and connections too)."""


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def _pipeline(name: str) -> RAGPipeline:
    if name not in _PIPELINES:
        docs = load_path(Path(os.environ.get("ASTROMESH_AGENTS_DIR", "agents"))).rag_pipelines
        if name not in docs:
            raise LookupError(f"RAG pipeline {name!r} not found (known: {sorted(docs)})")
        _PIPELINES[name] = build_pipeline(docs[name], env=os.environ)
    return _PIPELINES[name]


async def _handle(event: S3Event) -> dict[str, Any]:
    from astromesh.rag.vectorstores.faiss_store import FaissVectorStore, load_from_s3, save_to_s3

    s3 = _s3()
    index_uri = os.environ.get("ASTROMESH_FAISS_S3_URI")
    results: list[dict[str, Any]] = []
    touched: set[str] = set()
    for record in event.records:
        # S3 event keys are URL-encoded (a space arrives as '+').
        bucket, key = record.s3.bucket.name, unquote_plus(record.s3.get_object.key)
        name = os.environ.get("ASTROMESH_INGEST_PIPELINE") or key.split("/", 1)[0]
        pipeline = _pipeline(name)
        store = pipeline.store
        if index_uri and isinstance(store, FaissVectorStore) and name not in touched:
            load_from_s3(index_uri, store.path, client=s3)
            pipeline.store = store = FaissVectorStore(store.path, dimension=store.dimension)
        source = f"s3://{bucket}/{key}"
        if record.event_name.startswith("ObjectRemoved"):
            removed = await pipeline.delete(f"file:{source}")
            results.append({"source": source, "pipeline": name, "status": "deleted",
                            "chunks": removed})  # fmt: skip
        else:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / Path(key).name
                s3.download_file(bucket, key, str(local))
                outcome = await ingest_file(pipeline, local, source=source)
            results.append({"source": source, "pipeline": name, "status": outcome.status,
                            "chunks": len(outcome.chunks)})  # fmt: skip
        if results[-1]["status"] in ("indexed", "replaced", "deleted"):
            touched.add(name)
    if index_uri:
        for name in touched:
            store = _PIPELINES[name].store
            if isinstance(store, FaissVectorStore):
                save_to_s3(store.path, index_uri, client=s3)
    return {"results": results}


@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    """Ingest every object of the event; answer what happened to each."""
    return asyncio.run(_handle(event))
