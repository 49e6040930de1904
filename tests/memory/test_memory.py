"""Semantic recall, episodic log queries, the summary strategy and the context builder."""

from __future__ import annotations

from datetime import timedelta

import pytest

from astromesh.config.agent import SemanticMemory as SemanticConfig
from astromesh.errors import ConfigurationError, ProviderError
from astromesh.memory import (
    ContextBuilder,
    Episode,
    build_episodic_memory,
    build_memory,
    build_semantic_memory,
    build_summary_store,
    model_summarizer,
)
from astromesh.models.base import ProviderSettings
from astromesh.models.openai_compat import OpenAICompatModel
from astromesh.models.types import Message
from astromesh.rag.types import Hit
from astromesh.runs.state import RunState, RunStatus, utcnow
from astromesh.stores.base import SessionKey
from tests.stores.conftest import make_backend
from tests.support.model_servers import Reply

KEY = SessionKey(agent="helper", session_id="s1")


@pytest.fixture(scope="module")
def embedder():
    from astromesh.rag.embeddings.onnx import OnnxEmbedder

    return OnnxEmbedder()


@pytest.mark.parametrize("backend", ["memory", "sqlite", "pgvector"])
async def test_semantic_recall_respects_threshold_scope_and_max_results(
    embedder, backend, tmp_path, request
):
    dsn = request.getfixturevalue("postgres_schema") if backend == "pgvector" else None
    memory = build_semantic_memory(
        SemanticConfig(backend=backend, similarity_threshold=0.5, max_results=2),
        embedder=embedder,
        sqlite_path=tmp_path / "sem.db",
        postgres_dsn=dsn,
    )
    facts = [
        "The customer's favourite colour is green.",
        "The customer lives in Lisbon, Portugal.",
        "The customer prefers email over phone calls.",
    ]
    for fact in facts:
        await memory.remember(KEY, fact)
    await memory.remember(KEY, facts[0])  # the same fact twice is stored once
    other = SessionKey(agent="someone-else", session_id="s1")
    await memory.remember(other, "The customer's favourite colour is red.")

    recalled = await memory.recall(KEY, "What colour does the customer like?")
    assert [h.content for h in recalled] == [facts[0]]  # others are below the threshold
    assert recalled[0].score >= 0.5
    loose = await memory.recall(KEY, "What colour does the customer like?", threshold=0.0)
    assert len(loose) == 2 and "red" not in " ".join(h.content for h in loose)
    listed = await memory.list(KEY)
    assert [h.content for h in listed] == facts
    await memory.remember(
        KEY.__class__("helper", "s2"), "Session two only: order 77.", session_only=True
    )
    assert not await memory.recall(KEY, "order 77", threshold=0.3)
    await memory.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_episodic_log_queries_by_session_agent_and_time(kind, request, tmp_path):
    backend = await make_backend(kind, request, tmp_path)
    log = build_episodic_memory(backend)
    now = utcnow()
    for i, (agent, session) in enumerate([("a", "s1"), ("a", "s2"), ("b", "s1"), ("a", "s1")]):
        run = RunState(agent=agent, session_id=session, query=f"q{i}")
        run.status = RunStatus.SUCCEEDED
        run.answer = f"answer {i}"
        run.record("tool_call", duration_ms=5, name="add", arguments={"a": i}, ok=True)
        run.usage.tokens_in, run.usage.cost = 10 * i, 0.01 * i
        episode = Episode.from_run(run).model_copy(
            update={"finished_at": now + timedelta(minutes=i)}
        )
        await log.record(episode)
        await log.record(episode)  # re-recording replaces
    s1 = await log.query(session_id="s1")
    assert [e.query for e in s1] == ["q3", "q2", "q0"]
    assert [e.query for e in await log.query(agent="a", session_id="s1")] == ["q3", "q0"]
    window = await log.query(since=now + timedelta(minutes=1), until=now + timedelta(minutes=3))
    assert [e.query for e in window] == ["q2", "q1"]
    first = s1[0]
    assert first.tool_calls == [
        {"name": "add", "arguments": {"a": 3}, "ok": True, "duration_ms": 5.0}
    ]
    assert first.cost == pytest.approx(0.03) and first.answer == "answer 3"
    assert (await log.get(first.run_id)) == first
    assert await log.query(limit=1) == [first]
    await backend.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis", "postgres"])
async def test_summary_strategy_folds_old_turns_with_the_model(
    kind, request, tmp_path, openai_server
):
    backend = await make_backend(kind, request, tmp_path)
    model = OpenAICompatModel(ProviderSettings("openai_compat", "m", endpoint=openai_server.url))
    memory = build_memory(
        backend.history,
        strategy="summary",
        max_turns=2,
        max_tokens=None,
        summarizer=model_summarizer(model),
        summaries=build_summary_store(backend),
    )
    openai_server.push(Reply("User asked q0 and q1."), Reply("User asked q0, q1 and q2."))
    for i in range(4):
        await memory.remember(KEY, f"q{i}", f"a{i}")
    assert len(openai_server.requests) == 2  # turns 3 and 4 each pushed one pair out
    prompt = openai_server.requests[1]["messages"][-1]["content"]
    assert "User asked q0 and q1." in prompt and "user: q1" in prompt and "assistant: a1" in prompt
    recalled = await memory.recall(KEY)
    assert recalled[0].role == "system" and recalled[0].content.endswith(
        "User asked q0, q1 and q2."
    )
    assert [m.content for m in recalled[1:]] == ["q2", "a2", "q3", "a3"]
    # A failing model keeps the turn and leaves the summary as it was.
    openai_server.push(Reply(status=400))
    await memory.remember(KEY, "q4", "a4")
    assert (await memory.recall(KEY))[0].content.endswith("q0, q1 and q2.")
    assert await memory.clear(KEY) == 10
    assert await memory.recall(KEY) == []
    await model.aclose()
    await backend.close()


def test_summary_strategy_needs_a_summariser():
    from astromesh.stores.memory import MemoryBackend

    with pytest.raises(ConfigurationError, match="needs a summariser"):
        build_memory(MemoryBackend().history, strategy="summary", max_turns=2, max_tokens=None)


async def test_model_summarizer_propagates_provider_errors(openai_server):
    model = OpenAICompatModel(ProviderSettings("openai_compat", "m", endpoint=openai_server.url))
    openai_server.push(Reply(status=400))
    with pytest.raises(ProviderError):
        await model_summarizer(model)(None, [Message.user("hi")])
    await model.aclose()


def hit(text, score, source="kb.md"):
    return Hit(text[:8], text, {"source": source}, score)


def test_context_builder_fits_everything_when_there_is_room():
    built = ContextBuilder(context_window=4000, reserve_output=500).build(
        system="You are helpful.",
        query="What now?",
        history=[Message.user("hi"), Message.assistant("hello")],
        memories=[hit("User likes tea.", 0.9)],
        knowledge=[hit("Tea is brewed at 80C.", 0.8)],
    )
    assert built.dropped == [] and built.fits
    system = built.messages[0].content
    assert "You are helpful." in system and "- User likes tea." in system
    assert "[1] (kb.md) Tea is brewed at 80C." in system
    assert [m.content for m in built.messages[1:]] == ["hi", "hello", "What now?"]
    assert built.as_step()["kept"] == {
        "history_turns": 1,
        "memories": 1,
        "knowledge": 1,
        "summary": 0,
    }


def test_context_builder_drops_least_useful_first_and_reports_it():
    history = []
    for i in range(5):
        history += [Message.user(f"old question {i} " + "x" * 200), Message.assistant("y" * 200)]
    knowledge = [hit("k-high " + "z" * 300, 0.9), hit("k-low " + "z" * 300, 0.3)]
    memories = [hit("m-mid " + "w" * 300, 0.6)]
    builder = ContextBuilder(context_window=450, reserve_output=100)
    built = builder.build(
        system="S" * 100,
        query="Q?",
        history=[Message.system("Summary: earlier stuff"), *history],
        memories=memories,
        knowledge=knowledge,
    )
    kinds = [(d.kind, d.detail.split(":")[0]) for d in built.dropped]
    # Oldest turns go first, the newest turn is protected in the first pass ...
    assert kinds[:4] == [("history", "turn 1"), ("history", "turn 2"), ("history", "turn 3"),
                         ("history", "turn 4")]  # fmt: skip
    # ... then the lowest-scored knowledge; the best chunk and memory stay.
    assert ("knowledge", "kb.md") in kinds and built.kept["knowledge"] == 1
    assert "k-high" in built.messages[0].content and "k-low" not in built.messages[0].content
    assert built.tokens <= built.budget == 350
    step = built.as_step()
    assert step["fits"] and step["dropped"][0]["kind"] == "history"
    assert built.messages[-1].content == "Q?"


def test_context_builder_reports_when_even_the_basics_do_not_fit():
    built = ContextBuilder(context_window=50, reserve_output=10).build(
        system="S" * 400, query="Q", knowledge=[hit("k", 0.5)]
    )
    assert not built.fits and built.dropped[0].kind == "knowledge"
