"""``json_transform``: reshape JSON with a JMESPath expression.

JMESPath is a query language, not code: it selects, filters, projects and calls a fixed set
of pure functions, so a model-written expression cannot execute anything. The ``jmespath``
package (pure Python, no dependencies) is imported when the tool is built.

Arguments: ``data`` (any JSON value, or a string holding JSON) and ``expression``, e.g.
``items[?price > `10`].name``. Input larger than :data:`MAX_INPUT_CHARS` is refused.

Upstream's ``json_transform`` takes a Jinja2 ``template`` that renders JSON instead of an
``expression``; a call with ``template`` is rendered in the bounded sandbox that renders
prompts (:mod:`astromesh.prompts.sandbox`: no Python internals, a time, step and size budget),
with ``data`` as its only variable, and the output parsed as JSON. Exactly one of the two.
"""

from __future__ import annotations

import json
from typing import Any

from astromesh.errors import ConfigurationError, ToolError
from astromesh.tools.base import Tool, ToolContext

MAX_INPUT_CHARS = 1_000_000
MAX_EXPRESSION_CHARS = 1_000
MAX_TEMPLATE_CHARS = 10_000


def _jmespath() -> Any:
    try:
        import jmespath
    except ImportError:
        raise ConfigurationError(
            "builtin tool 'json_transform' needs the 'jmespath' package: pip install jmespath"
        ) from None
    return jmespath


class JsonTransformTool(Tool):
    """Applies a JMESPath expression to JSON data."""

    def __init__(self, name: str = "json_transform", description: str = "") -> None:
        self._jmespath = _jmespath()
        super().__init__(
            name=name,
            description=description
            or "Select, filter or reshape JSON data with a JMESPath expression.",
            parameters={
                "type": "object",
                "properties": {
                    "data": {"description": "The JSON value, or a string containing JSON"},
                    "expression": {
                        "type": "string",
                        "description": "JMESPath, e.g. people[?age > `30`].name",
                    },
                    "template": {
                        "type": "string",
                        "description": "Instead of expression: a Jinja2 template over"
                        " {{ data }} that outputs JSON",
                    },
                },
                "required": ["data"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        if ("expression" in arguments) == ("template" in arguments):
            raise ToolError("give exactly one of expression (JMESPath) or template (Jinja2)")
        if "template" in arguments:
            return _render_json(arguments["template"], _parsed(arguments["data"]))
        expression: str = arguments["expression"]
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
        data = _parsed(arguments["data"])
        jmespath = self._jmespath
        try:
            compiled = jmespath.compile(expression)
        except jmespath.exceptions.ParseError as exc:
            raise ToolError(f"invalid JMESPath expression: {exc}") from None
        try:
            return compiled.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise ToolError(f"cannot apply the expression: {exc}") from None


def _parsed(data: Any) -> Any:
    """``data``, decoded when it is a string holding JSON."""
    if isinstance(data, str):
        if len(data) > MAX_INPUT_CHARS:
            raise ToolError(f"data is larger than {MAX_INPUT_CHARS} characters")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ToolError(f"data is a string but not valid JSON: {exc}") from None
    return data


def _render_json(source: str, data: Any) -> Any:
    """Upstream's form: render ``source`` with ``data`` in the bounded sandbox, parse JSON."""
    from jinja2 import TemplateSyntaxError

    from astromesh.prompts.sandbox import TemplateLimitError, compile_template, render_bounded

    if len(source) > MAX_TEMPLATE_CHARS:
        raise ToolError(f"template is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        rendered = render_bounded(compile_template(source), {"data": data})
    except TemplateSyntaxError as exc:
        raise ToolError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    except TemplateLimitError as exc:
        raise ToolError(f"template refused: {exc.reason}") from None
    except Exception as exc:  # noqa: BLE001 - undefined names, type errors: the model's to fix
        raise ToolError(f"cannot render the template: {type(exc).__name__}: {exc}") from None
    try:
        return json.loads(rendered)
    except ValueError as exc:
        raise ToolError(f"the template did not render JSON: {exc}: {rendered[:200]}") from None
