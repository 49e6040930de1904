"""The chain (YAML order, redaction feeding the next rule, block stopping it), the factory,
and the pipeline helpers that put redacted text into the run and record every verdict."""

from __future__ import annotations

import pytest

from astromesh.config.guardrails import GuardrailsSpec
from astromesh.errors import ConfigurationError
from astromesh.guardrails import (
    Action,
    GuardrailBlocked,
    GuardrailChain,
    Side,
    build_guardrails,
    guard_budget,
    guard_input,
    guard_output,
)
from astromesh.guardrails.chain import BLOCKED_PLACEHOLDER
from astromesh.models.types import Message, Usage
from astromesh.runs.state import RunState

SPEC = {
    "input": [
        {"type": "pii_detection", "action": "redact"},
        {"type": "content_filter", "blocked_patterns": [r"\[EMAIL\]"], "action": "block"},
        {"type": "max_length", "max_chars": 20},
    ],
    "output": [
        {"type": "pii_detection", "action": "redact", "entities": ["email"]},
        {"type": "topic_filter", "blocked_topics": ["poison"]},
        {"type": "cost_limit", "max_tokens_per_turn": 1000, "max_cost_per_run": 0.25},
    ],
}


def chain(spec=SPEC) -> GuardrailChain:
    return build_guardrails(GuardrailsSpec.model_validate(spec))


def test_build_guardrails_keeps_yaml_order():
    built = chain()
    assert [g.type for g in built.input] == ["pii_detection", "content_filter", "max_length"]
    assert [g.type for g in built.output] == ["pii_detection", "topic_filter", "cost_limit"]
    assert not build_guardrails(None) and bool(built)


def test_unknown_pii_entities_fail_when_the_agent_is_built():
    bad = {"input": [{"type": "pii_detection", "entities": ["emial"]}]}
    with pytest.raises(ConfigurationError, match="unknown entity 'emial'"):
        chain(bad)


async def test_a_redaction_is_what_the_next_guardrail_sees():
    """pii turns the address into [EMAIL]; the content filter then blocks on the placeholder."""
    result = await chain().check_input("write a@b.io")
    assert [(v.guardrail, v.action) for v in result.verdicts] == [
        ("pii_detection", Action.REDACT),
        ("content_filter", Action.BLOCK),
    ]
    assert result.blocked is result.verdicts[-1]


async def test_a_block_stops_the_chain_and_order_matters():
    reordered = {"input": [SPEC["input"][2], SPEC["input"][0]]}
    result = await chain(reordered).check_input("call +44 20 7946 0958 now please")
    assert [v.guardrail for v in result.verdicts] == ["max_length"]  # pii never ran
    allowed = await chain().check_input("+44 20 7946 0958")
    assert allowed.blocked is None and allowed.text == "[PHONE]" and allowed.changed


async def test_guard_input_replaces_the_query_and_records_each_verdict():
    run = RunState(agent="a", query="ring +44 20 7946 0958")
    result = await guard_input(run, chain())
    assert result is not None and run.query == "ring [PHONE]"
    steps = [s.data for s in run.steps if s.type == "guardrail"]
    assert steps == [
        {
            "name": "pii_detection",
            "side": "input",
            "action": "redact",
            "reason": "redacted PHONE x1",
            "findings": {"PHONE": 1},
        },
        {"name": "content_filter", "side": "input", "action": "allow", "reason": ""},
        {"name": "max_length", "side": "input", "action": "allow", "reason": ""},
    ]
    assert await guard_input(run, chain()) is None  # already judged: not judged twice
    assert len([s for s in run.steps if s.type == "guardrail"]) == 3


async def test_a_blocked_input_never_stays_in_the_run():
    run = RunState(agent="a", query="mail me at a@b.io")
    with pytest.raises(GuardrailBlocked) as info:
        await guard_input(run, chain())
    assert run.query == BLOCKED_PLACEHOLDER
    assert info.value.code == "guardrail_blocked"
    assert info.value.message == "Your message contains content this agent does not accept."
    assert "a@b.io" not in run.model_dump_json()


def answered_run(answer: str, *, cost: float = 0.0) -> RunState:
    run = RunState(agent="a", query="q")
    run.messages = [Message.user("q"), Message.assistant(f"Final Answer: {answer}")]
    run.record("model_call", content=f"Final Answer: {answer}")
    run.usage.add(provider="p", model="m", role="default", usage=Usage(), cost=cost)
    return run


async def test_guard_output_redacts_every_copy_of_the_answer():
    run = answered_run("write to bo@corp.example")
    result = await guard_output(run, chain(), "write to bo@corp.example")
    assert result.text == "write to [EMAIL]" and result.blocked is None
    assert run.messages[-1].content == "Final Answer: write to [EMAIL]"
    assert run.steps[0].data["content"] == "Final Answer: write to [EMAIL]"
    assert "bo@corp" not in run.model_dump_json()
    sides = {s.data["side"] for s in run.steps if s.type == "guardrail"}
    assert sides == {"output"}


async def test_a_blocked_answer_is_replaced_everywhere():
    run = answered_run("mix the poison slowly")
    result = await guard_output(run, chain(), "mix the poison slowly")
    assert result.blocked is not None and result.text == BLOCKED_PLACEHOLDER
    assert result.blocked.user_message is not None
    assert "poison" not in run.messages[-1].content
    assert "poison" not in run.steps[0].data["content"]


async def test_the_cost_limit_applies_to_the_answer_and_between_steps():
    over = answered_run("fine", cost=0.3)
    result = await guard_output(over, chain(), "fine")
    assert result.blocked is not None and result.blocked.guardrail == "cost_limit"
    budget = chain().check_budget(answered_run("x", cost=0.25))
    assert budget is not None and budget.action is Action.BLOCK
    assert chain().check_budget(answered_run("x", cost=0.1)) is None


def test_guard_budget_records_the_stop_between_steps():
    within, spent = answered_run("x", cost=0.1), answered_run("x", cost=0.25)
    assert guard_budget(within, chain()) is None and within.steps[-1].type == "model_call"
    verdict = guard_budget(spent, chain())
    assert verdict is not None
    assert verdict.user_message(Side.OUTPUT) == ("This request reached the agent's usage limit.")
    assert spent.steps[-1].data == {
        "name": "cost_limit",
        "side": "between_steps",
        "action": "block",
        "reason": "cost $0.250000, limit $0.25 per run",
    }


async def test_no_guardrails_change_nothing():
    empty = GuardrailChain()
    run = RunState(agent="a", query="a@b.io")
    assert await guard_input(run, empty) is None and run.query == "a@b.io"
    assert (await guard_output(run, empty, "x")).text == "x" and run.steps == []
