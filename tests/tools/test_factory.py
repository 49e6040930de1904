"""The tool factory: every type but ``agent`` from its validated config, with its
dependencies injected; and the RAG tool against an injected retriever."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.tools import PythonTool
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import CalculatorTool, HttpGetTool, TextSummarizeTool
from astromesh.tools.client import ClientTool
from astromesh.tools.factory import build_tool, build_tools
from astromesh.tools.rag import RagTool, render_passages
from astromesh.tools.webhook import WebhookTool

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def cfg(**fields):
    return TypeAdapter(AnyTool).validate_python(fields)


async def summariser(text: str, max_words: int) -> str:
    return text[:5]


PASSAGES = [
    {"content": "Refunds take 5 days.", "metadata": {"source": "faq.md"}, "score": 0.91},
    {"content": "Shipping is free.", "metadata": {"doc_id": "policy-2"}, "score": 0.5},
    {"content": "Unrelated.", "metadata": {}, "score": 0.1},
]


def test_each_single_tool_type_is_built():
    built = {
        "calc": build_tool(cfg(type="builtin", name="calculator")),
        "summary": build_tool(cfg(type="builtin", name="text_summarize"), summariser=summariser),
        "get": build_tool(cfg(type="builtin", name="http_get")),
        "py": build_tool(
            cfg(type="python", name="add", handler="tests.support.tools:add"),
        ),
        "hook": build_tool(cfg(type="webhook", name="hook", url="https://example.com/h"), env={}),
        "rag": build_tool(
            cfg(type="rag", name="kb", pipeline="docs", top_k=2),
            retriever_for=lambda name: (name or "docs", lambda q, k: PASSAGES),
        ),
        "client": build_tool(
            cfg(
                type="client",
                name="pick_date",
                description="Ask the user for a date",
                parameters={"label": {"type": "string"}},
            )
        ),
    }
    expected = {
        "calc": CalculatorTool,
        "summary": TextSummarizeTool,
        "get": HttpGetTool,
        "py": PythonTool,
        "hook": WebhookTool,
        "rag": RagTool,
        "client": ClientTool,
    }
    for key, cls in expected.items():
        assert isinstance(built[key], cls), key
    assert built["client"].parameters["required"] == ["label"]
    assert built["client"].description == "Ask the user for a date"


@pytest.mark.parametrize(
    ("fields", "kwargs", "words"),
    [
        ({"type": "agent", "name": "helper", "agent": "other"}, {}, "built by the registry"),
        ({"type": "rag", "name": "kb", "pipeline": "docs"}, {}, "none is wired"),
        (
            {"type": "python", "name": "x", "handler": "tests.support.nothing:here"},
            {},
            "cannot import",
        ),
        (
            {"type": "webhook", "name": "h", "url": "https://e.com", "secret_env": "NOPE"},
            {"env": {}},
            "'NOPE' is not set",
        ),
        ({"type": "builtin", "name": "text_summarize"}, {}, "needs the agent's model"),
    ],
)
def test_unusable_configs_fail_when_the_agent_is_built(fields, kwargs, words):
    with pytest.raises(ConfigurationError, match=words):
        build_tool(cfg(**fields), **kwargs)


async def test_build_tools_wraps_single_tools_and_registers_closers():
    async with AsyncExitStack() as stack:
        [tool] = await build_tools(cfg(type="builtin", name="http_get"), exit_stack=stack)
        client = tool._http()
    assert client.is_closed


async def test_rag_tool_renders_numbered_passages_and_caps_top_k():
    asked = []

    def retriever(query, top_k):
        asked.append((query, top_k))
        return PASSAGES[:top_k]

    tool = build_tool(
        cfg(type="rag", name="kb", pipeline="docs", top_k=2),
        retriever_for=lambda name: (name or "docs", retriever),
    )
    result = await tool.call({"query": "refund time", "top_k": 1}, CTX)
    default = await tool.call({"query": "refund time"}, CTX)
    too_many = await tool.call({"query": "refund time", "top_k": 9}, CTX)
    assert result.ok and result.content == "[1] source: faq.md (score 0.910)\nRefunds take 5 days."
    assert "[2] source: policy-2 (score 0.500)\nShipping is free." in default.content
    assert asked == [("refund time", 1), ("refund time", 2)]
    assert not too_many.ok and "top_k" in too_many.content


async def test_rag_tool_accepts_async_retrievers_and_reports_nothing_found():
    async def retriever(query, top_k):
        return []

    tool = RagTool("kb", pipeline="docs", retriever=retriever)
    empty = await tool.call({"query": "anything"}, CTX)
    blank = await tool.call({"query": "  "}, CTX)
    assert empty.ok and empty.content == "No matching passages were found."
    assert not blank.ok and "query is empty" in blank.content


def test_long_passages_are_cut():
    text = render_passages([{"content": "y" * 5000, "metadata": {"title": "T"}}])
    assert text.startswith("[1] source: T\n") and text.endswith(" [...]") and len(text) < 4100
