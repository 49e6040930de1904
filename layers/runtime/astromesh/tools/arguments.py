"""A quick yes to the common tool-argument check, before the full JSON-Schema validator.

Every tool call is checked against its tool's parameter schema (:meth:`Tool.argument_errors
<astromesh.tools.base.Tool.argument_errors>`). The full validator costs tens of microseconds
a call even for a valid call of a two-integer schema, on the step loop's hot path; most tools
(every Python tool, whose schema pydantic derives from type hints) have a flat schema: an
object of typed properties, some required, perhaps no others allowed. For such a schema
:func:`quick_check` gives a plain-Python check that answers only "certainly valid" or "ask
the validator", so the messages of an invalid call, and any schema outside that shape, stay
the validator's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

QuickCheck = Callable[[Mapping[str, Any]], bool]
"""True when the arguments are certainly valid; False means "run the full validator"."""

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
"""Keywords that never make a value invalid."""

_OBJECT_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}
_PROPERTY_KEYWORDS = _ANNOTATIONS | {"type"}


def _is_integer(value: Any) -> bool:
    # A float such as 1.0 is an integer to JSON Schema as well; the validator decides those.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def quick_check(schema: Any) -> QuickCheck | None:
    """The quick check of ``schema``, or ``None`` when it is not of the flat shape it knows
    (every call then goes to the full validator)."""
    if not isinstance(schema, dict) or not set(schema) <= _OBJECT_KEYWORDS:
        return None
    if schema.get("type", "object") != "object":
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(extra, bool):
        return None
    if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
        return None
    checks: dict[str, Callable[[Any], bool] | None] = {}
    for name, prop in properties.items():
        if not isinstance(prop, dict) or not set(prop) <= _PROPERTY_KEYWORDS:
            return None
        check = _type_check(prop.get("type"))
        if check is False:
            return None
        checks[name] = check or None
    names = frozenset(checks)
    needed = tuple(required)
    typed = tuple((name, check) for name, check in checks.items() if check is not None)

    def certainly_valid(arguments: Mapping[str, Any]) -> bool:
        if not isinstance(arguments, dict):
            return False
        for name in needed:
            if name not in arguments:
                return False
        if not extra and not names.issuperset(arguments):
            return False
        return all(check(arguments[name]) for name, check in typed if name in arguments)

    return certainly_valid


def _type_check(declared: Any) -> Callable[[Any], bool] | bool | None:
    """The check of a property's ``type``: ``None`` for no type (anything goes), ``False``
    for a type this module does not know."""
    if declared is None:
        return None
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
        return False
    checks = tuple(_TYPES[name] for name in names)
    if len(checks) == 1:
        return checks[0]
    return lambda value: any(check(value) for check in checks)
