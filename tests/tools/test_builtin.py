"""Builtin tools: calculator (no eval), current_time, json_transform, read_file confinement,
text_summarize, and their ``config`` checks."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.models.types import ModelResponse, Usage
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import (
    CalculatorTool,
    CurrentTimeTool,
    JsonTransformTool,
    ReadFileTool,
    TextSummarizeTool,
    build_builtin,
    router_summariser,
)
from astromesh.tools.builtin.calculator import CalculationError, evaluate
from astromesh.tools.builtin.current_time import CurrentTimeConfig

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def builtin(name: str, **config):
    return TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name, "config": config})


# -- calculator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 ** 3 ** 2", 512),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("--3", 3),
        ("+5 - -5", 10),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** -2", 0.25),
        ("1.5e3 + 0.5", 1500.5),
        ("sqrt(16) + abs(-3)", 7.0),
        ("max(1, 9, 4) - min(3, 2)", 7),
        ("round(pi, 3)", 3.142),
        ("floor(2.7) + ceil(2.1)", 5),
        ("2 ** 64", 18446744073709551616),
    ],
)
def test_calculator_follows_python_arithmetic(expression, value):
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("2 ** 100000", "larger than"),
        ("9 ** 9 ** 9", "larger than"),
        ("10 ** 5000", "too large"),
        ("(2 ** 4000) * (2 ** 4000)", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("(-8) ** 0.5", "not a real number"),
        ("sqrt(-1)", "math error"),
        ("__import__('os').system('true')", "only these functions"),
        ("open('/etc/passwd')", "only these functions"),
        ("(1).__class__", "not allowed"),
        ("x + 1", "unknown name"),
        ("[1, 2]", "not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("1 << 10", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("2 +", "not a valid expression"),
        ("1" + " + 1" * 300, "longer than"),
    ],
)
def test_calculator_refuses_what_it_must(expression, words):
    with pytest.raises(CalculationError, match=words):
        evaluate(expression)


async def test_calculator_tool_reports_errors_as_results():
    tool = CalculatorTool()
    ok = await tool.call({"expression": "6 * 7"}, CTX)
    bad = await tool.call({"expression": "1/0"}, CTX)
    assert ok.ok and ok.data == {"expression": "6 * 7", "result": 42}
    assert not bad.ok and "division by zero" in bad.content


# -- current_time ----------------------------------------------------------------------------

FIXED = datetime(2026, 3, 29, 0, 30, 0, tzinfo=UTC)  # Europe switched to summer time that night


async def test_current_time_is_timezone_aware():
    tool = CurrentTimeTool(clock=lambda: FIXED)
    utc = (await tool.call({}, CTX)).data
    madrid = (await tool.call({"timezone": "Europe/Madrid"}, CTX)).data
    tokyo = (await tool.call({"timezone": "Asia/Tokyo"}, CTX)).data
    assert utc["iso"] == "2026-03-29T00:30:00+00:00" and utc["weekday"] == "Sunday"
    assert madrid["iso"] == "2026-03-29T01:30:00+01:00"
    assert tokyo["iso"] == "2026-03-29T09:30:00+09:00" and tokyo["utc_offset"] == "+0900"
    assert utc["unix"] == madrid["unix"] == int(FIXED.timestamp())


async def test_current_time_default_zone_and_unknown_zone():
    tool = build_builtin(builtin("current_time", timezone="America/New_York"))
    assert (await tool.call({}, CTX)).data["timezone"] == "America/New_York"
    bad = await tool.call({"timezone": "Mars/Olympus"}, CTX)
    assert not bad.ok and "unknown time zone 'Mars/Olympus'" in bad.content
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        build_builtin(builtin("current_time", timezone="Nowhere/City"))
    assert CurrentTimeConfig().timezone == "UTC"


async def test_current_time_uses_the_real_clock():
    data = (await CurrentTimeTool().call({}, CTX)).data
    assert abs(data["unix"] - datetime.now(UTC).timestamp()) < 5


# -- json_transform --------------------------------------------------------------------------

PEOPLE = {"people": [{"name": "Ana", "age": 34}, {"name": "Bo", "age": 25}]}


@pytest.mark.parametrize(
    ("data", "expression", "result"),
    [
        (PEOPLE, "people[?age > `30`].name", ["Ana"]),
        (PEOPLE, "people[*].{who: name}", [{"who": "Ana"}, {"who": "Bo"}]),
        (PEOPLE, "length(people)", 2),
        ('{"a": {"b": [1, 2, 3]}}', "sum(a.b)", 6),
        (PEOPLE, "missing.path", None),
    ],
)
async def test_json_transform_applies_jmespath(data, expression, result):
    outcome = await JsonTransformTool().call({"data": data, "expression": expression}, CTX)
    assert outcome.ok and outcome.data == result


async def test_json_transform_errors_are_readable():
    tool = JsonTransformTool()
    syntax = await tool.call({"data": {}, "expression": "people[?"}, CTX)
    not_json = await tool.call({"data": "{nope", "expression": "a"}, CTX)
    bad_type = await tool.call({"data": {"a": "x"}, "expression": "sum(a)"}, CTX)
    assert not syntax.ok and "invalid JMESPath" in syntax.content
    assert not not_json.ok and "not valid JSON" in not_json.content
    assert not bad_type.ok and "cannot apply" in bad_type.content


# -- read_file -------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with notes, a nested file, a big file and symlinks in and out; a secret outside."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("hello notes")
    (root / "sub" / "deep.md").write_text("# deep")
    (root / "big.txt").write_text("x" * 100)
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "more.txt").write_text("also secret")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path / "outside", root / "escape_dir")
    os.symlink(root / "notes.txt", root / "inner_link.txt")
    return root


async def test_read_file_reads_inside_the_root(tree):
    tool = ReadFileTool(tree)
    notes = await tool.call({"path": "notes.txt"}, CTX)
    deep = await tool.call({"path": "sub/../sub/deep.md"}, CTX)
    linked = await tool.call({"path": "inner_link.txt"}, CTX)
    assert notes.ok and notes.data["content"] == "hello notes"
    assert deep.ok and deep.data == {"path": "sub/deep.md", "size": 6, "content": "# deep"}
    assert linked.ok and linked.data["path"] == "notes.txt"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../secret.txt", "outside the allowed folder"),
        ("sub/../../secret.txt", "outside the allowed folder"),
        ("escape.txt", "outside the allowed folder"),
        ("escape_dir/more.txt", "outside the allowed folder"),
        ("/etc/passwd", "outside the allowed folder"),
        ("missing.txt", "no such file"),
        ("sub", "not a regular file"),
        ("bad\x00name", "NUL byte"),
    ],
)
async def test_read_file_refuses_escapes(tree, path, words):
    result = await ReadFileTool(tree).call({"path": path}, CTX)
    assert not result.ok and words in result.content
    assert "SECRET" not in result.content.upper().replace("SECRET.TXT", "")


async def test_read_file_caps_the_size(tree):
    result = await ReadFileTool(tree, max_bytes=10).call({"path": "big.txt"}, CTX)
    assert result.ok and result.data["content"] == "x" * 10
    assert result.data["truncated"] == "showing the first 10 of 100 bytes"


def test_read_file_root_comes_from_config_relative_to_the_agents_folder(tree):
    tool = build_builtin(builtin("read_file", root="root", max_bytes=5), search_path=tree.parent)
    assert isinstance(tool, ReadFileTool) and tool.root == tree.resolve() and tool.max_bytes == 5
    with pytest.raises(ConfigurationError, match="does not exist"):
        build_builtin(builtin("read_file", root="nope"), search_path=tree.parent)
    # no root (upstream's agents): the agents folder itself
    rootless = build_builtin(builtin("read_file"), search_path=tree)
    assert isinstance(rootless, ReadFileTool) and rootless.root == tree.resolve()


# -- text_summarize --------------------------------------------------------------------------


async def test_text_summarize_calls_the_summariser():
    seen = []

    async def summariser(text: str, max_words: int) -> str:
        seen.append((text, max_words))
        return "short"

    tool = TextSummarizeTool(summariser)
    assert (await tool.call({"text": "long text " * 50}, CTX)).data == "short"
    assert (await tool.call({"text": "abc", "max_words": 10}, CTX)).data == "short"
    empty = await tool.call({"text": "   "}, CTX)
    assert seen == [("long text " * 50, 120), ("abc", 10)]
    assert not empty.ok and "no text" in empty.content


async def test_router_summariser_asks_the_agent_model():
    class FakeRouter:
        def __init__(self):
            self.calls = []

        async def complete(self, messages, *, role, params):
            self.calls.append((messages, role, params))
            return ModelResponse(
                content=" A summary. ", provider="p", model="m", usage=Usage(tokens_in=1)
            )

    router = FakeRouter()
    summary = await router_summariser(router, role="fast")("Some text", 30)
    [(messages, role, params)] = router.calls
    assert summary == "A summary."
    assert role == "fast" and params.max_tokens == 90
    assert "at most 30 words" in messages[0].content and messages[1].content == "Some text"


def test_text_summarize_needs_a_summariser():
    with pytest.raises(ConfigurationError, match="needs the agent's model"):
        build_builtin(builtin("text_summarize"))


# -- config checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "config", "words"),
    [
        ("calculator", {"precision": 3}, "takes no config"),
        ("http_get", {"timeout": 3}, "config.timeout: Extra inputs are not permitted"),
        ("http_get", {"timeout_seconds": -1}, "config.timeout_seconds"),
        ("text_summarize", {"max_words": 1}, None),
    ],
)
def test_builtin_config_typos_fail_when_the_agent_is_built(name, config, words):
    with pytest.raises(ConfigurationError) as info:
        build_builtin(builtin(name, **config), summariser=None)
    if words:
        assert words in str(info.value)
