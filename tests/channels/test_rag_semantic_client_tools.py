"""Routes over the RAG pipelines, semantic memory and client tools (runs that pause)."""

from __future__ import annotations

from tests.channels.test_errors import assert_error
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply

RAG_DOC = (
    "apiVersion: astromesh/v1\nkind: RAGPipeline\nmetadata: {{name: docs}}\nspec:\n"
    "  chunking: {{strategy: sentence, chunk_size: 30, overlap: 0}}\n"
    "  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}\n"
    "  vector_store: {{backend: faiss, path: '{path}'}}\n"
)


async def test_rag_ingest_then_query(agents_dir, make_app, client_for, tmp_path):
    write_agent(agents_dir)
    (agents_dir / "docs.rag.yaml").write_text(RAG_DOC.format(path=tmp_path / "docs.faiss"))
    client = client_for(make_app())
    document = "Invoices are due in 30 days. Our office is in Lisbon. Support answers by e-mail."

    ingested = await client.post(
        "/v1/rag/ingest",
        json={"pipeline": "docs", "document": document, "metadata": {"source": "faq"}},
    )
    assert ingested.status_code == 200, ingested.text
    assert ingested.json() == {"pipeline": "docs", "chunks": 3}
    again = await client.post("/v1/rag/ingest", json={"pipeline": "docs", "document": document})
    assert again.json()["chunks"] == 3  # same document: same chunks, nothing duplicated

    answer = await client.post(
        "/v1/rag/query", json={"pipeline": "docs", "query": "Where is the office?", "top_k": 1}
    )
    body = answer.json()
    assert answer.status_code == 200 and body["top_k"] == 1 and body["query"]
    [best] = body["results"]
    assert "Lisbon" in best["content"] and isinstance(best["score"], float)
    unknown = await client.post("/v1/rag/query", json={"pipeline": "nope", "query": "x"})
    assert "known pipelines: docs" in assert_error(unknown, 404, "not_found")["message"]


async def test_semantic_memory_lists_what_the_session_taught(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={"semantic": {"backend": "memory", "similarity_threshold": 0.2}},
    )
    openai_server.push(Reply("Noted, you like teal."))
    client = client_for(make_app())
    run = await client.post(
        "/v1/agents/helper/run", json={"query": "My favourite colour is teal.", "session_id": "s1"}
    )
    assert run.status_code == 200, run.text

    found = await client.get(
        "/v1/memory/helper/semantic", params={"query": "colour", "session_id": "s1", "top_k": 3}
    )
    body = found.json()
    assert found.status_code == 200 and body["agent"] == "helper" and body["top_k"] == 3
    assert any("teal" in r["content"] for r in body["results"])
    other = await client.get(
        "/v1/memory/helper/semantic", params={"query": "colour", "session_id": "s2"}
    )
    assert other.json()["results"] == []  # a session's turns stay in that session


async def test_client_tool_pauses_the_run_until_outputs_are_submitted(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[
            {
                "name": "lookup_company",
                "type": "client",
                "description": "Look up a company",
                "parameters": {"company_name": {"type": "string", "description": "Name"}},
            }
        ],
    )
    openai_server.push(
        Reply(tool_calls=[("lookup_company", {"company_name": "Acme"})]),
        Reply("Acme has 40 employees."),
    )
    client = client_for(make_app())
    paused = (
        await client.post("/v1/agents/helper/run", json={"query": "Tell me about Acme"})
    ).json()
    assert paused["status"] == "requires_action"
    run_id = paused["run_id"]
    pending = (await client.get(f"/v1/runs/{run_id}")).json()
    assert pending["status"] == "requires_action"

    bad = await client.post(
        f"/v1/runs/{run_id}/tool_outputs",
        json={"tool_outputs": [{"tool_call_id": "nope", "output": "x"}]},
    )
    assert bad.status_code == 422, bad.text
    done = await client.post(
        f"/v1/runs/{run_id}/tool_outputs",
        json={"tool_outputs": [{"tool_call_id": "call_1", "output": {"employees": 40}}]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert done.json()["answer"] == "Acme has 40 employees."
    sent_back = openai_server.requests[1]["messages"][-1]
    assert sent_back["role"] == "tool" and sent_back["content"] == '{"employees": 40}'
    again = await client.post(
        f"/v1/runs/{run_id}/tool_outputs",
        json={"tool_outputs": [{"tool_call_id": "call_1", "output": "x"}]},
    )
    assert_error(again, 409, "conflict")
