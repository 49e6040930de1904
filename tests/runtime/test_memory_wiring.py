"""Memory as the runtime wires it: semantic recall into the prompt, the episodic log, the
summary strategy and the context report recorded in the prepare step."""

from __future__ import annotations

from astromesh.runs.state import RunStatus
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply


async def test_semantic_memory_recalls_an_old_turn_of_the_same_session_only(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={
            "conversational": {"backend": "sqlite", "max_turns": 1},
            "semantic": {"backend": "memory", "similarity_threshold": 0.3, "max_results": 2},
        },
    )
    openai_server.push(Reply("Noted."), Reply("Paris."), Reply("Teal."), Reply("No idea."))
    runtime = make_runtime()
    await runtime.run("helper", "My favourite colour is teal.", session_id="ada")
    await runtime.run("helper", "What is the capital of France?", session_id="ada")
    recalled = await runtime.run("helper", "Which colour do I like best?", session_id="ada")
    await runtime.run("helper", "Which colour do I like best?", session_id="bob")

    ada_system = openai_server.requests[2]["messages"][0]["content"]
    assert "Relevant memories:" in ada_system and "teal" in ada_system
    # the window (max_turns=1) alone would only have shown the France turn
    assert [m["content"] for m in openai_server.requests[2]["messages"][1:3]] == [
        "What is the capital of France?",
        "Paris.",
    ]
    bob_system = openai_server.requests[3]["messages"][0]["content"]
    assert "teal" not in bob_system  # another session never sees Ada's turns
    context = recalled.steps[0].data["context"]
    assert context["kept"]["memories"] >= 1 and context["dropped"] == []


async def test_episodic_log_records_each_finished_run(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={"episodic": {"backend": "memory"}},
    )
    openai_server.push(Reply("one"), Reply("two", tokens_in=5, tokens_out=2))
    runtime = make_runtime()
    first = await runtime.run("helper", "q1", session_id="s")
    second = await runtime.run("helper", "q2", session_id="s")
    episodic = (await runtime.get("helper")).episodic
    episodes = await episodic.query(agent="helper", session_id="s")
    assert [e.run_id for e in episodes] == [second.id, first.id]
    assert (episodes[0].query, episodes[0].answer, episodes[0].status) == ("q2", "two", "succeeded")


async def test_summary_strategy_folds_old_turns_with_the_agents_model(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={"conversational": {"backend": "sqlite", "strategy": "summary", "max_turns": 1}},
    )
    openai_server.push(
        Reply("Hello Ada."),
        Reply("Rome."),
        Reply("SUMMARY: The user is Ada."),  # after run 2, the oldest turn is folded
        Reply("You are Ada."),
        Reply("SUMMARY: The user is Ada and asked about Italy."),  # after run 3
    )
    runtime = make_runtime()
    await runtime.run("helper", "I am Ada.", session_id="s")
    await runtime.run("helper", "Capital of Italy?", session_id="s")
    run = await runtime.run("helper", "Who am I?", session_id="s")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "You are Ada."
    assert "running summary" in openai_server.requests[2]["messages"][0]["content"]
    final_request = openai_server.requests[3]["messages"]
    assert "The user is Ada." in final_request[0]["content"]
    assert [m["content"] for m in final_request[1:]] == ["Capital of Italy?", "Rome.", "Who am I?"]


async def test_a_small_context_window_drops_old_turns_and_says_so(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model={
            "primary": {
                "provider": "openai_compat",
                "model": "tiny-context",
                "endpoint": openai_server.url,
                "parameters": {"max_tokens": 10},
            }
        },
        memory={"conversational": {"backend": "sqlite", "max_turns": 10}},
    )
    (agents_dir / "providers.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: ProviderConfig\nmetadata: {name: p}\nspec:\n"
        "  providers:\n    tiny:\n      type: openai_compat\n      models: [tiny-context]\n"
    )
    long = "word " * 60
    openai_server.push(Reply("a"), Reply("b"), Reply("c"))
    runtime = make_runtime()
    agent = await runtime.get("helper")
    agent.context_window = 120  # a tiny model: the prompt must fit 120 - 10 tokens
    await runtime.run("helper", long + "one", session_id="s")
    await runtime.run("helper", long + "two", session_id="s")
    run = await runtime.run("helper", "three", session_id="s")
    context = run.steps[0].data["context"]
    assert context["budget"] == 110 and context["fits"]
    assert [d["kind"] for d in context["dropped"]] == ["history"]
    assert [m["content"] for m in openai_server.requests[-1]["messages"][1:]][-1] == "three"
    assert len(openai_server.requests[-1]["messages"]) == 4  # system, the newest pair, query
