"""``json_transform``: reshape JSON with a JMESPath expression.

JMESPath is a query language, not code: it selects, filters, projects and calls a fixed set
of pure functions, so a model-written expression cannot execute anything. The ``jmespath``
package (pure Python, no dependencies) is imported when the tool is built.

Arguments: ``data`` (any JSON value, or a string holding JSON) and ``expression``, e.g.
``items[?price > `10`].name``. Input larger than :data:`MAX_INPUT_CHARS` is refused.
"""

from __future__ import annotations

import json
from typing import Any

from astromesh.errors import ConfigurationError, ToolError
from astromesh.tools.base import Tool, ToolContext

MAX_INPUT_CHARS = 1_000_000
MAX_EXPRESSION_CHARS = 1_000


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
                },
                "required": ["data", "expression"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        expression: str = arguments["expression"]
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
        data = arguments["data"]
        if isinstance(data, str):
            if len(data) > MAX_INPUT_CHARS:
                raise ToolError(f"data is larger than {MAX_INPUT_CHARS} characters")
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise ToolError(f"data is a string but not valid JSON: {exc}") from None
        jmespath = self._jmespath
        try:
            compiled = jmespath.compile(expression)
        except jmespath.exceptions.ParseError as exc:
            raise ToolError(f"invalid JMESPath expression: {exc}") from None
        try:
            return compiled.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise ToolError(f"cannot apply the expression: {exc}") from None
