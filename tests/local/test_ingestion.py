"""An S3 upload through `astromesh local`: the documents bucket's notification (from the
templates) invokes the ingestion function, which indexes the object into pgvector; the api
function then retrieves it over REST."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.local.conftest import KEY_HEADERS, PIPELINE
from tests.support.local_server import ACCOUNT, REGION, LocalServer

BUCKET = f"astromesh-dev-documents-{ACCOUNT}-{REGION}"
KEY = f"{PIPELINE}/sea/coast notes.md"
CHUNKS = (
    "# Lighthouses\nThe lighthouse keeper winds the clockwork every four hours.",
    "# Tides\nSpring tides come twice a month, with the new and the full moon.",
)


def query(local: LocalServer, text: str) -> list[dict]:
    answer = httpx.post(
        f"{local.url}/v1/rag/query",
        json={"pipeline": PIPELINE, "query": text, "top_k": 3},
        headers=KEY_HEADERS,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def best(local: LocalServer, text: str) -> str | None:
    """The best passage for ``text`` (the test embedder gives equal texts equal vectors)."""
    results = query(local, text)
    return results[0]["content"] if results else None


def wait_for(condition: Callable[[], bool], local: LocalServer) -> None:
    deadline = time.monotonic() + 90
    while not condition():
        assert time.monotonic() < deadline, local.output[-3000:]
        time.sleep(0.25)


def test_an_uploaded_document_is_indexed_then_retrieved_over_rest(local: LocalServer):
    s3 = local.client("s3")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body="\n\n".join(CHUNKS).encode() + b"\n")

    wait_for(lambda: all(best(local, chunk) == chunk for chunk in CHUNKS), local)
    [passage] = [r for r in query(local, CHUNKS[1]) if r["content"] == CHUNKS[1]]
    assert passage["id"].startswith(f"file:s3://{BUCKET}/{KEY}")

    s3.delete_object(Bucket=BUCKET, Key=KEY)
    wait_for(lambda: all(best(local, chunk) is None for chunk in CHUNKS), local)
