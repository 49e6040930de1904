"""A plain-text tool protocol for models without native tool calling.

The model is shown the tools and asked to answer either with an ``Action:`` / ``Action
Input:`` pair or with ``Final Answer:``. Small local models (the embedded SmolLM2) and bare
completion endpoints use this; the run's steps look the same as with native calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from astromesh.models.types import ToolCall, ToolDefinition

FINAL_MARKER = "Final Answer:"
_ACTION = re.compile(r"Action:\s*(?P<name>[A-Za-z_][\w.\-]*)\s*\n\s*Action Input:\s*", re.S)


def instructions(tools: Sequence[ToolDefinition]) -> str:
    """The system-prompt section that teaches the protocol."""
    lines = ["You can use these tools:"]
    for tool in tools:
        schema = json.dumps(tool.parameters.get("properties", {}), ensure_ascii=False)
        lines.append(f"- {tool.name}: {tool.description} Arguments: {schema}")
    lines += [
        "",
        "To use a tool, reply with exactly two lines and nothing after them:",
        "Action: <tool name>",
        'Action Input: <JSON object of arguments, e.g. {"x": 1}>',
        "You will then receive an Observation with the result.",
        f"When you can answer, reply with: {FINAL_MARKER} <your answer>",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A reply understood as either one tool call or a final answer."""

    call: ToolCall | None
    answer: str | None


def parse(text: str, *, call_id: str) -> Parsed:
    """Read a reply. A reply with neither marker is taken as the final answer."""
    if FINAL_MARKER in text:
        return Parsed(call=None, answer=text.split(FINAL_MARKER, 1)[1].strip())
    match = _ACTION.search(text)
    if match is None:
        return Parsed(call=None, answer=text.strip())
    raw = text[match.end() :].strip()
    try:
        arguments, _ = json.JSONDecoder().raw_decode(raw)
    except json.JSONDecodeError:
        arguments = {"_raw": raw}
    if not isinstance(arguments, dict):
        arguments = {"_raw": raw}
    return Parsed(call=ToolCall(id=call_id, name=match["name"], arguments=arguments), answer=None)


class AnswerStreamFilter:
    """Forwards only the final-answer part of a streamed reply.

    Text before ``Final Answer:`` (thoughts, actions) is held back; if the reply ends with no
    marker and no action at all, the whole reply was the answer and is released at the end.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._released = 0
        self._answering = False

    def feed(self, piece: str) -> str:
        self._buffer += piece
        if not self._answering:
            at = self._buffer.find(FINAL_MARKER)
            if at < 0:
                return ""
            self._answering = True
            self._released = at + len(FINAL_MARKER)
            head = self._buffer[self._released :].lstrip()
            self._released = len(self._buffer) - len(head)
        out = self._buffer[self._released :]
        self._released = len(self._buffer)
        return out

    def finish(self) -> str:
        """What is still owed to the user when the stream ends."""
        if self._answering or _ACTION.search(self._buffer):
            return ""
        return self._buffer.strip()
