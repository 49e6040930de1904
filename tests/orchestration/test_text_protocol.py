"""The text tool protocol used with models that have no native tool calling."""

from __future__ import annotations

from astromesh.models.types import ToolDefinition
from astromesh.orchestration import text_protocol as tp


def test_instructions_list_tools_and_markers():
    text = tp.instructions(
        [
            ToolDefinition(
                name="add",
                description="Add.",
                parameters={"type": "object", "properties": {"a": {"type": "integer"}}},
            )
        ]
    )
    assert '- add: Add. Arguments: {"a": {"type": "integer"}}' in text
    assert "Action: <tool name>" in text and "Final Answer:" in text


def test_parse_action_with_json_arguments():
    parsed = tp.parse(
        'Thought: count\nAction: word_stats\nAction Input: {"text": "a b"} trailing', call_id="c1"
    )
    assert parsed.answer is None
    assert parsed.call is not None
    assert (parsed.call.id, parsed.call.name, parsed.call.arguments) == (
        "c1",
        "word_stats",
        {"text": "a b"},
    )


def test_parse_bad_json_keeps_raw_for_a_readable_error():
    parsed = tp.parse("Action: add\nAction Input: {a: 1", call_id="c1")
    assert parsed.call is not None and parsed.call.arguments == {"_raw": "{a: 1"}


def test_parse_final_answer_and_plain_text():
    assert tp.parse("Thought: done\nFinal Answer: 42", call_id="x").answer == "42"
    assert tp.parse("  just an answer ", call_id="x").answer == "just an answer"


def test_stream_filter_releases_only_the_answer():
    f = tp.AnswerStreamFilter()
    pieces = ["Thought: easy\nFin", "al Ans", "wer: The ", "answer ", "is 4."]
    out = "".join(f.feed(p) for p in pieces) + f.finish()
    assert out == "The answer is 4."


def test_stream_filter_holds_back_actions():
    f = tp.AnswerStreamFilter()
    out = "".join(f.feed(p) for p in ["Action: add\n", 'Action Input: {"a": 1}'])
    assert out + f.finish() == ""


def test_stream_filter_releases_plain_replies_at_the_end():
    f = tp.AnswerStreamFilter()
    assert f.feed("Hello ") == "" and f.feed("there") == ""
    assert f.finish() == "Hello there"
