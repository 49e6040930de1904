"""``calculator``: arithmetic on an expression, without ``eval``.

The expression is parsed with :mod:`ast` and only numbers, ``+ - * / // % **``, unary
signs, parentheses and a short list of :mod:`math` functions and constants are evaluated;
anything else (names, attributes, calls of other functions, comprehensions) is refused
before any work is done. Sizes are bounded so a model cannot make a worker spin: the
expression's length and node count, the exponent of ``**``, and the number of bits of any
intermediate integer.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_INT_BITS = 4096
"""About 1,233 decimal digits: far beyond any useful answer, far below a slow one."""
MAX_EXPONENT = 10_000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculationError(ToolError):
    """The expression is not allowed or cannot be computed; the message says why."""


def evaluate(expression: str) -> Number:
    """The value of ``expression``.

    Raises:
        CalculationError: a syntax error, a forbidden construct, a division by zero, or a
            result past the size limits.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not a valid expression: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculationError(f"expression has more than {MAX_NODES} parts")
    try:
        return _checked(_eval(tree.body))
    except ZeroDivisionError:
        raise CalculationError("division by zero") from None
    except OverflowError:
        raise CalculationError("result is too large") from None
    except (ValueError, TypeError) as exc:
        raise CalculationError(f"math error: {exc}") from None


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculationError(f"only numbers are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalculationError(f"operator {type(node.op).__name__} is not allowed")
        return _checked(op(left, right))
    if isinstance(node, ast.UnaryOp):
        unary = _UNARY.get(type(node.op))
        if unary is None:
            raise CalculationError(f"operator {type(node.op).__name__} is not allowed")
        return unary(_eval(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculationError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            allowed = ", ".join(sorted(_FUNCTIONS))
            raise CalculationError(f"only these functions are allowed: {allowed}")
        return _checked(_FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args)))
    raise CalculationError(f"{type(node).__name__} is not allowed in an expression")


def _power(base: Number, exponent: Number) -> Number:
    """``base ** exponent``, refused before computing when the result would be huge."""
    if abs(exponent) > MAX_EXPONENT:
        raise CalculationError(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    grows = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1
    if grows and exponent > 0 and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise CalculationError("result is too large")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculationError("result is not a real number")
    return _checked(result)


def _checked(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculationError("result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculationError("result is not a finite number")
    return value


class CalculatorTool(Tool):
    """Evaluates arithmetic safely."""

    def __init__(self, name: str = "calculator", description: str = "") -> None:
        super().__init__(
            name=name,
            description=description
            or (
                "Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, "
                "pi, e and " + ", ".join(sorted(_FUNCTIONS)) + "."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "expression": {"type": "string", "description": "e.g. (2 + 3) * 4 ** 2"}
                },
                "required": ["expression"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return {"expression": arguments["expression"], "result": evaluate(arguments["expression"])}
