"""Message content on spans: only when opted in, and only after the agent's PII redaction.

The GenAI conventions leave content off spans unless the user asks for it
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, or ``spec.telemetry.
capture_message_content`` in the RuntimeConfig). Spans are exported to collectors and kept
with runs, where a guardrail's later redaction cannot reach them, so captured text goes
through every ``pii_detection`` guardrail the agent declares (on any side) first: a model's
raw answer or a tool's arguments are on a span before the output guardrails ever see them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.guardrails import GuardrailChain
    from astromesh.models.types import Message

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The conventions' opt-in switch (``true`` turns capture on for every agent)."""


def capture_from_env(env: Mapping[str, str]) -> bool:
    return env.get(CAPTURE_ENV, "").strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class Capture:
    """How one agent's content goes on spans: ``redact`` applied to every text."""

    redact: Callable[[str], str]

    def text(self, text: str) -> str:
        return self.redact(text)

    def messages(self, messages: Sequence[Message]) -> str:
        """Messages as the conventions' JSON (``role`` and ``parts``), redacted."""
        return json.dumps([self._message(m) for m in messages], ensure_ascii=False)

    def _message(self, message: Message) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "content": self.redact(message.content)})
        for call in message.tool_calls:
            arguments = self.redact(json.dumps(call.arguments, ensure_ascii=False))
            parts.append(
                {"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments}
            )
        if message.tool_call_id is not None:  # a tool's result answers the call by id
            parts = [{**p, "type": "tool_call_response", "id": message.tool_call_id} for p in parts]
        return {"role": message.role, "parts": parts}


def capture_for(guardrails: GuardrailChain, enabled: bool) -> Capture | None:
    """The agent's capture, or ``None`` when content stays off its spans."""
    if not enabled:
        return None
    from astromesh.guardrails.pii import PiiGuardrail  # only an opted-in agent needs it

    detectors = [g.detector for g in _all(guardrails) if isinstance(g, PiiGuardrail)]

    def redact(text: str) -> str:
        for detector in detectors:
            text, _ = detector.redact(text)
        return text

    return Capture(redact)


def _all(guardrails: GuardrailChain) -> Iterable[object]:
    return (*guardrails.input, *guardrails.output, *guardrails.tool_results)
