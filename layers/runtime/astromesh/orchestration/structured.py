"""Structured output for patterns: a model's reply as a validated pydantic object, or a failure.

Plans and supervisor decisions steer the run, so they are never parsed leniently: the reply
is validated with pydantic (plus any check the pattern adds), an invalid reply is sent back
once with the exact problem so the model can correct it, and a second invalid reply raises
:class:`StructuredOutputInvalid` naming what was wrong.

How the model is asked depends on its candidate for the role:

- native tool calling: exactly one tool, ``respond``, whose parameters are the JSON Schema,
  and an instruction to call it. ``tool_choice`` is not sent: servers disagree on the named
  form (llama.cpp's server rejects it), and validation catches a model that ignores the tool.
- otherwise (or ``mode="text"``): an instruction to answer with only a JSON object matching
  the schema, shown in the prompt.

Either way a JSON object in the reply's text is also accepted, so a native model that
answers in text instead of calling ``respond`` still gets validated, not rejected outright.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from astromesh.errors import AstromeshError
from astromesh.models.types import Message, ModelResponse, ToolDefinition
from astromesh.orchestration.base import Pattern, StepContext
from astromesh.orchestration.common import with_system
from astromesh.runs.state import RunState

T = TypeVar("T", bound=BaseModel)

RESPOND_TOOL = "respond"
_FENCE = re.compile(r"```(?:json)?\s*(?P<body>.*?)```", re.S)


class StructuredOutputInvalid(AstromeshError):
    """The model's structured reply was still invalid after one corrected retry."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


async def ask_structured(
    pattern: Pattern,
    run: RunState,
    ctx: StepContext,
    messages: Sequence[Message],
    schema: type[T],
    *,
    role: str,
    what: str,
    code: str,
    check: Callable[[T], str | None] | None = None,
    mode: str = "auto",
) -> T:
    """Ask for ``schema`` and return the validated object.

    Args:
        messages: the conversation to ask with; its system message gets the format
            instruction (the caller's list is not modified).
        what: how the object is named in messages ("the plan", "the supervisor's decision").
        code: the failure code when the retry is invalid too.
        check: further validation needing run context (e.g. that a tool exists); returns a
            problem description or ``None``.
        mode: ``auto`` (native when the role's primary model supports tools), ``native``
            or ``text``.

    Raises:
        StructuredOutputInvalid: the reply and its one retry were both invalid.
    """
    native = _uses_native(ctx, role, mode)
    schema_json = schema.model_json_schema()
    tools = [_respond_tool(schema_json, what)] if native else []
    conversation = with_system(messages, _instruction(schema_json, what, native=native))
    error = ""
    for attempt in (1, 2):
        response = await pattern.call_model(
            run, ctx, conversation, tools=tools, role=role, stream_tokens=False
        )
        value, error = _validated(response, schema, check)
        if value is not None:
            return value
        run.record("invalid_output", what=what, attempt=attempt, error=error)
        conversation = conversation + _feedback(response, error)
    raise StructuredOutputInvalid(f"{what} was invalid after one retry: {error}", code=code)


def _uses_native(ctx: StepContext, role: str, mode: str) -> bool:
    if mode == "auto":
        return ctx.agent.router.primary(role).supports_native_tools
    return mode == "native"


def _respond_tool(schema_json: dict[str, Any], what: str) -> ToolDefinition:
    return ToolDefinition(
        name=RESPOND_TOOL,
        description=f"Give {what}. Call this exactly once; its arguments are your whole reply.",
        parameters=schema_json,
    )


def _instruction(schema_json: dict[str, Any], what: str, *, native: bool) -> str:
    if native:
        return (
            f"Reply by calling the `{RESPOND_TOOL}` tool exactly once with {what} as its "
            "arguments. Do not answer in plain text."
        )
    schema_text = json.dumps(schema_json, ensure_ascii=False)
    return (
        f"Reply with {what} as a single JSON object, and nothing else (no prose, no code "
        f"fence). It must match this JSON Schema: {schema_text}"
    )


def _validated(
    response: ModelResponse, schema: type[T], check: Callable[[T], str | None] | None
) -> tuple[T | None, str]:
    """The reply as ``schema``, or ``None`` and what is wrong with it."""
    data, error = _payload(response)
    if error:
        return None, error
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        return None, describe_validation_error(exc)
    problem = check(value) if check is not None else None
    if problem:
        return None, problem
    return value, ""


def _payload(response: ModelResponse) -> tuple[Any, str]:
    """The JSON the model gave: the ``respond`` call's arguments, or a JSON object in text."""
    for call in response.tool_calls:
        if call.name != RESPOND_TOOL:
            continue
        if set(call.arguments) == {"_raw"}:
            return None, f"the arguments of '{RESPOND_TOOL}' are not a JSON object: " + repr(
                str(call.arguments["_raw"])[:200]
            )
        return call.arguments, ""
    if response.tool_calls:
        names = ", ".join(sorted({call.name for call in response.tool_calls}))
        return None, f"called {names}; the only tool available is '{RESPOND_TOOL}'"
    return _json_in_text(response.content)


def _json_in_text(text: str) -> tuple[Any, str]:
    stripped = text.strip()
    if not stripped:
        return None, "the reply was empty; a JSON object was expected"
    fenced = _FENCE.search(stripped)
    candidate = fenced["body"].strip() if fenced else stripped
    start = candidate.find("{")
    if start < 0:
        return None, f"the reply is not JSON: {stripped[:200]!r}"
    try:
        value, _ = json.JSONDecoder().raw_decode(candidate[start:])
    except json.JSONDecodeError as exc:
        return None, f"the reply is not valid JSON ({exc.msg} at position {exc.pos})"
    return value, ""


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each with the field path: readable by a model and a person."""
    parts = []
    for err in exc.errors(include_url=False):
        location = ".".join(str(part) for part in err["loc"]) or "(object)"
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


def _feedback(response: ModelResponse, error: str) -> list[Message]:
    """The invalid reply and the correction request, in a shape every provider accepts."""
    retry = f"That reply was not valid: {error}. Reply again with the corrected object."
    if response.tool_calls:
        results = [
            Message.tool(retry, tool_call_id=call.id, name=call.name)
            for call in response.tool_calls
        ]
        return [response.as_message(), *results]
    return [Message.assistant(response.content), Message.user(retry)]
