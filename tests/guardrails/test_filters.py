"""Topic, content, length and cost guardrails."""

from __future__ import annotations

import pytest

from astromesh.guardrails._text import HAS_AHOCORASICK, PhraseMatcher
from astromesh.guardrails.base import Action, Side
from astromesh.guardrails.content import ContentGuardrail
from astromesh.guardrails.cost import CostGuardrail
from astromesh.guardrails.length import MaxLengthGuardrail
from astromesh.guardrails.topic import TopicGuardrail
from astromesh.models.types import Usage
from astromesh.runs.state import RunState

TOPICS = ["weapon", "crypto trading", "c++", "self harm"]
TOPIC_CASES = [
    ("How do I build a weapon?", ["weapon"]),
    ("Tell me about WEAPONS", ["weapon"]),
    ("crypto\n   Trading tips", ["crypto trading"]),
    ("I like C++ a lot", ["c++"]),
    ("a self harm question", ["self harm"]),
    ("shotgun and weaponised and gunsmith", []),
    ("cryptography is fun; trading cards too", []),
    ("c+ grade", []),
    ("", []),
]


@pytest.mark.parametrize("use_automaton", [True, False])
@pytest.mark.parametrize(("text", "phrases"), TOPIC_CASES)
def test_phrase_matching_is_whole_word_and_both_engines_agree(text, phrases, use_automaton):
    matcher = PhraseMatcher(TOPICS, plurals=True, use_automaton=use_automaton)
    assert [m.phrase for m in matcher.find(text)] == phrases


def test_the_automaton_is_used_when_installed():
    assert HAS_AHOCORASICK
    assert PhraseMatcher(["x"])._automaton is not None
    assert PhraseMatcher(["x"], use_automaton=False)._regex is not None


def test_leftmost_longest_match_wins():
    matcher = PhraseMatcher(["new", "new york", "york city"])
    text = "I love New York City"
    assert [(text[m.start : m.end], m.phrase) for m in matcher.find(text)] == [
        ("New York", "new york")
    ]


async def test_topic_filter_blocks_with_a_safe_message():
    verdict = await TopicGuardrail(TOPICS).check("Best weapons to buy?", None, Side.INPUT)
    assert verdict.action is Action.BLOCK
    assert verdict.reason == "forbidden topic 'weapon'"
    assert verdict.user_message(Side.INPUT) == "This agent cannot help with that topic."


async def test_topic_filter_can_redact_instead():
    guard = TopicGuardrail(TOPICS, action="redact")
    verdict = await guard.check("Weapons and crypto trading, then lunch.", None, Side.OUTPUT)
    assert verdict.action is Action.REDACT
    assert verdict.text == "[REDACTED] and [REDACTED], then lunch."
    assert verdict.findings == {"weapon": 1, "crypto trading": 1}


async def test_topic_filter_embedding_hook_catches_paraphrases():
    vectors = {
        "weapon": [1.0, 0.0, 0.0],
        "gambling": [0.0, 1.0, 0.0],
        "how to make a firearm at home": [0.9, 0.1, 0.0],
        "what is the capital of France": [0.0, 0.1, 1.0],
    }
    calls = []

    async def embedder(texts):
        calls.append(list(texts))
        return [vectors[t] for t in texts]

    guard = TopicGuardrail(["weapon", "gambling"], embedder=embedder, threshold=0.8)
    near = await guard.check("how to make a firearm at home", None, Side.INPUT)
    far = await guard.check("what is the capital of France", None, Side.INPUT)
    assert near.action is Action.BLOCK and "close to forbidden topic 'weapon'" in near.reason
    assert far.action is Action.ALLOW
    assert calls[0] == ["weapon", "gambling"] and len(calls) == 3  # topics embedded once


async def test_content_filter_keywords_and_patterns():
    guard = ContentGuardrail(
        keywords=["darn", "top secret"], patterns=[r"(?i)project\s+x-\d+", r"\bPWD=\S+"]
    )
    assert (await guard.check("A classic class.", None, Side.INPUT)).action is Action.ALLOW
    keyword = await guard.check("That is DARN annoying", None, Side.INPUT)
    pattern = await guard.check("see Project  X-42 files", None, Side.OUTPUT)
    assert keyword.action is Action.BLOCK and keyword.reason == "forbidden content: keyword #1"
    second = await guard.check("it is Top  Secret", None, Side.INPUT)
    assert second.reason == "forbidden content: keyword #2"  # the word itself is not stored
    assert pattern.reason == "forbidden content: pattern #1"
    message = pattern.user_message(Side.OUTPUT)
    assert message == "The answer contains content this agent does not accept."


async def test_content_filter_redacts_and_merges_overlaps():
    guard = ContentGuardrail(
        keywords=["top secret"], patterns=[r"(?i)secret plan", r"PWD=\S+"], action="redact"
    )
    verdict = await guard.check("the TOP SECRET plan; PWD=hunter2 ok", None, Side.OUTPUT)
    assert verdict.action is Action.REDACT
    assert verdict.text == "the [REDACTED]; [REDACTED] ok"


async def test_max_length_blocks_long_text_only():
    guard = MaxLengthGuardrail(10)
    assert (await guard.check("x" * 10, None, Side.INPUT)).action is Action.ALLOW
    verdict = await guard.check("x" * 11, None, Side.INPUT)
    assert verdict.action is Action.BLOCK and verdict.reason == "11 characters, limit 10"
    assert verdict.user_message(Side.INPUT) == "Your message is too long (limit: 10 characters)."


def run_with_usage(tokens_in: int, tokens_out: int, cost: float) -> RunState:
    run = RunState(agent="a", query="q")
    run.usage.add(
        provider="p",
        model="m",
        role="default",
        usage=Usage(tokens_in=tokens_in, tokens_out=tokens_out),
        cost=cost,
    )
    return run


def test_cost_limits_against_the_run_usage():
    guard = CostGuardrail(max_tokens_per_turn=100, max_cost_per_run=0.5)
    assert guard.usage_verdict(run_with_usage(50, 40, 0.1)).action is Action.ALLOW
    tokens = guard.usage_verdict(run_with_usage(60, 40, 0.1))
    assert tokens.action is Action.BLOCK and tokens.reason == "used 100 tokens, limit 100 per turn"
    cost = guard.usage_verdict(run_with_usage(1, 1, 0.75))
    assert cost.action is Action.BLOCK and "limit $0.5 per run" in cost.reason


async def test_cost_output_side_blocks_only_when_over():
    guard = CostGuardrail(max_tokens_per_turn=100)
    at_limit = run_with_usage(60, 40, 0)
    over = run_with_usage(60, 41, 0)
    assert (await guard.check("answer", at_limit, Side.OUTPUT)).action is Action.ALLOW
    assert (await guard.check("answer", over, Side.OUTPUT)).action is Action.BLOCK
    assert guard.usage_verdict(at_limit, before_step=True).action is Action.BLOCK


async def test_cost_input_side_refuses_a_message_bigger_than_the_budget():
    guard = CostGuardrail(max_tokens_per_turn=10)
    assert (await guard.check("x" * 40, None, Side.INPUT)).action is Action.ALLOW
    verdict = await guard.check("x" * 41, None, Side.INPUT)
    assert verdict.action is Action.BLOCK and "about 11 tokens" in verdict.reason
