"""``json_transform`` called in upstream's form: a Jinja2 ``template`` over ``data``, rendered
in the bounded prompt sandbox and parsed as JSON."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def builtin(name: str):
    return build_builtin(TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name}))


async def test_json_transform_renders_upstreams_template() -> None:
    tool = builtin("json_transform")
    data = {"items": [{"name": "a", "price": 3}, {"name": "b", "price": 12}]}
    template = (
        '{"names": [{% for i in data["items"] if i.price > 10 %}"{{ i.name }}"'
        "{% if not loop.last %},{% endif %}{% endfor %}]}"
    )
    result = await tool.call({"data": data, "template": template}, CTX)
    assert result.ok, result.content
    assert result.data == {"names": ["b"]}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"template": "{{ (9**(9**8)) % 7 }}"}, "template refused"),
        ({"template": "{{ ''.__class__.__mro__ }}"}, "cannot render"),
        ({"template": "not json"}, "did not render JSON"),
        ({"template": "{% for %}"}, "syntax error"),
        ({"template": "{}", "expression": "a"}, "exactly one"),
        ({}, "exactly one"),
    ],
)
async def test_json_transform_templates_are_bounded(args: dict, words: str) -> None:
    result = await builtin("json_transform").call({"data": {"a": 1}, **args}, CTX)
    assert not result.ok and words in result.content, result.content
