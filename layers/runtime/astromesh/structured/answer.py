"""What the model is asked for, and what is taken from its answer.

The answer may be bare JSON (what a native response format gives) or prose closed by a
fenced ``json`` block (what upstream's instructions ask for); the last fenced block that
parses wins, as upstream's ``extract_data`` does (a model that drafted and then corrected
itself means the correction). The object found is validated with the Draft 2020-12 validator
whose ``pattern`` runs on RE2, and with no retrieval of remote references at all.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

OUTPUT_INVALID: Final = "output_invalid"
"""The run error code when the answer does not match ``spec.output_schema`` after the one
repair (or once the output guardrails changed it)."""

MAX_PROBLEMS: Final = 3
"""Validation errors named in a message (a repair request, a run error)."""

MAX_PROBLEM_CHARS: Final = 200

_FENCED = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n[ \t]*```", re.DOTALL)


def instructions(schema: dict[str, Any]) -> str:
    """The section appended to the system prompt of an agent with an output schema."""
    return (
        "## Output format (required)\n"
        "Your final answer must be a JSON object that validates against this JSON Schema."
        " Answer with the JSON object alone, or end your answer with it in a ```json"
        " fenced block:\n\n"
        f"```json\n{json.dumps(schema, ensure_ascii=False, indent=2)}\n```"
    )


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-compatible ``response_format`` asking for JSON valid against ``schema``
    (Ollama's and TGI's providers translate it to their own ``format`` / ``grammar``)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


def extract_json(text: str) -> Any:
    """The JSON value in ``text`` (all of it, else the last fenced block that parses).

    Raises:
        ValueError: no JSON found.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in reversed(_FENCED.findall(text)):
        try:
            return json.loads(block)
        except ValueError:
            continue
    raise ValueError("the answer holds no JSON object (neither bare nor in a ```json block)")


def validation_problems(data: Any, schema: dict[str, Any]) -> list[str]:
    """Why ``data`` does not validate against ``schema`` (empty when it does), each naming
    the place in the object (``$.score``), at most :data:`MAX_PROBLEMS` of them."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable

    from astromesh.security.regex import schema_validator_class

    validator = schema_validator_class()(schema, registry=Registry())
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:  # a local $ref to nothing: the schema's fault, said as such
        return [f"the schema's reference cannot be resolved: {exc}"]
    problems = []
    for error in errors[:MAX_PROBLEMS]:
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        message = _requirement(error)
        if len(message) > MAX_PROBLEM_CHARS:
            message = message[: MAX_PROBLEM_CHARS - 3] + "..."
        problems.append(f"{where}: {message}")
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"({len(errors) - MAX_PROBLEMS} more)")
    return problems


def _requirement(error: Any) -> str:
    """What the failed keyword requires, in the schema's words only: never the answer's
    value, so a problem quoted in a step, a repair request or a run error cannot carry text
    the output guardrails have not screened."""
    keyword, expected = error.validator, error.validator_value
    if keyword == "required":
        return str(error.message)  # names the property, which the schema declares
    if keyword == "type":
        return f"must be of type {expected!r}"
    if keyword == "pattern":
        return f"must match {expected!r}"
    if keyword == "enum":
        return f"must be one of {expected!r}"
    if keyword == "const":
        return f"must be {expected!r}"
    if keyword in ("additionalProperties", "unevaluatedProperties") and expected is False:
        return "has properties the schema does not declare"
    if isinstance(expected, dict | list):
        return f"does not satisfy '{keyword}'"
    return f"must satisfy {keyword}={expected!r}"


def shape(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(data, None)`` when ``text`` holds an object valid against ``schema``, else
    ``(None, problem)`` with a sentence saying what failed."""
    try:
        data = extract_json(text)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(data, dict):
        return None, f"the answer's JSON is {type(data).__name__}, not an object"
    problems = validation_problems(data, schema)
    if problems:
        return None, "; ".join(problems)
    return data, None
