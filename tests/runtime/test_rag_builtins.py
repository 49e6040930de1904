"""Upstream's ``rag_query`` / ``rag_ingest`` builtins on a real RAGPipeline (packaged ONNX
MiniLM, FAISS): an agent ingests then finds its text; agents' documents never replace each
other's, since each agent's ids carry its tenant and name."""

from __future__ import annotations

from pathlib import Path

from astromesh.runs.state import RunStatus
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply

RAG = ("rag_ingest", "rag_query")


def write_pipeline(agents_dir: Path, tmp_path: Path) -> None:
    (agents_dir / "handbook.rag.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: RAGPipeline\nmetadata: {name: handbook}\nspec:\n"
        "  chunking: {strategy: sentence, chunk_size: 40, overlap: 0}\n"
        "  embeddings: {provider: onnx, model: all-MiniLM-L6-v2}\n"
        f"  vector_store: {{backend: faiss, path: '{tmp_path / 'kb.faiss'}'}}\n"
        "  retrieval: {top_k: 3}\n"
    )


async def test_an_agent_ingests_and_queries_the_only_pipeline(
    agents_dir, make_runtime, openai_server, tmp_path
) -> None:
    agents_dir.mkdir()
    write_pipeline(agents_dir, tmp_path)
    for name in ("alice", "bob"):
        write_agent(
            agents_dir,
            name,
            model=primary(openai_server.url),
            tools=[{"name": tool, "type": "builtin"} for tool in RAG],
        )
    runtime = make_runtime()
    ingest = ("rag_ingest", {"document": "The office cat is Miso.", "metadata": {"source": "faq"}})
    openai_server.push(Reply(tool_calls=[ingest]), Reply("stored"))
    run = await runtime.run("alice", "remember")
    assert run.status is RunStatus.SUCCEEDED
    step = next(s for s in run.steps if s.type == "tool_call")
    assert step.data["ok"], step.data
    assert ':alice:faq", "status": "indexed"' in step.data["result"]

    # bob's "faq" is his own document: alice's stays
    other = ("rag_ingest", {"document": "The office dog is Rex.", "metadata": {"source": "faq"}})
    openai_server.push(Reply(tool_calls=[other]), Reply("stored"))
    assert (await runtime.run("bob", "remember")).status is RunStatus.SUCCEEDED

    query = ("rag_query", {"query": "What is the cat called?", "top_k": 2})
    openai_server.push(Reply(tool_calls=[query]), Reply("Miso"))
    run = await runtime.run("alice", "cat?")
    step = next(s for s in run.steps if s.type == "tool_call")
    assert step.data["ok"] and "Miso" in step.data["result"] and "Rex" in step.data["result"]
