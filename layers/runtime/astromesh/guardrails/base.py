"""The guardrail interface: every rule looks at one text and returns a :class:`Verdict`.

A verdict is one of three actions, with the guardrail's name and a reason:

- ``allow``: the text passes unchanged;
- ``redact``: the text passes with parts replaced (``Verdict.text`` is the new text, and the
  only one that may be stored or sent on);
- ``block``: the text must not go further; ``reason`` is recorded with the run and
  ``message`` is what the user may be told.

Reasons and messages name *kinds* of findings ("EMAIL x2", "topic 'weapons'"), never the
text that was found: a verdict is persisted, the blocked content is not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.errors import AstromeshError

if TYPE_CHECKING:
    from astromesh.runs.state import RunState


class Action(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"


class Side(StrEnum):
    INPUT = "input"
    """The user's message, before anything is stored or sent to a model."""
    OUTPUT = "output"
    """The final answer, before it is returned or stored."""
    TOOL_RESULT = "tool_result"
    """What a tool returned, before it enters the conversation (YAML ``tool_results``)."""

    @property
    def subject(self) -> str:
        """How a guardrail's user-facing message names the text it judged."""
        return _SUBJECTS[self]


_SUBJECTS: dict[Side, str] = {
    Side.INPUT: "Your message",
    Side.OUTPUT: "The answer",
    Side.TOOL_RESULT: "The tool result",
}

DEFAULT_BLOCK_MESSAGES: dict[Side, str] = {
    Side.INPUT: "Your message was blocked by this agent's rules.",
    Side.OUTPUT: "The answer was withheld by this agent's rules.",
    Side.TOOL_RESULT: "A tool result was withheld by this agent's rules.",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guardrail's decision about one text."""

    guardrail: str
    action: Action
    reason: str = ""
    text: str | None = None
    """The redacted text (``redact`` only)."""
    message: str | None = None
    """What the user may be told when this verdict blocks (``None``: the side's default)."""
    findings: dict[str, int] = field(default_factory=dict)
    """How many of each kind were found (entity type, rule); never the found text."""

    @classmethod
    def allow(cls, guardrail: str) -> Verdict:
        return cls(guardrail, Action.ALLOW)

    @classmethod
    def redact(
        cls, guardrail: str, text: str, reason: str, findings: dict[str, int] | None = None
    ) -> Verdict:
        return cls(guardrail, Action.REDACT, reason, text=text, findings=findings or {})

    @classmethod
    def block(
        cls,
        guardrail: str,
        reason: str,
        *,
        message: str | None = None,
        findings: dict[str, int] | None = None,
    ) -> Verdict:
        return cls(guardrail, Action.BLOCK, reason, message=message, findings=findings or {})

    def user_message(self, side: Side) -> str:
        return self.message or DEFAULT_BLOCK_MESSAGES[side]

    def as_step(self, side: Side) -> dict[str, Any]:
        """The ``data`` of the run's ``guardrail`` step for this verdict."""
        data: dict[str, Any] = {
            "name": self.guardrail,
            "side": side.value,
            "action": self.action.value,
            "reason": self.reason,
        }
        if self.findings:
            data["findings"] = dict(self.findings)
        return data


class Guardrail(ABC):
    """One rule of ``spec.guardrails.input``, ``.output`` or ``.tool_results``.

    Subclasses set ``type`` (the YAML ``type``) and implement :meth:`check`. ``name``
    defaults to the type; it is what verdicts and the run's steps show.
    """

    type: ClassVar[str]

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.type

    @abstractmethod
    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        """Judge ``text`` (on ``side`` of ``run``, when there is a run)."""


class GuardrailBlocked(AstromeshError):
    """A guardrail blocked the run. ``message`` is safe to show the user."""

    code = "guardrail_blocked"
    status = 422

    def __init__(self, verdict: Verdict, side: Side) -> None:
        super().__init__(verdict.user_message(side))
        self.verdict = verdict
        self.side = side
