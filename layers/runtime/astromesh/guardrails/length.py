"""``max_length``: refuse text longer than ``max_chars`` characters.

On the input side this bounds what a user can make the agent read (and pay for); on the
output side it catches a runaway answer. It blocks rather than truncates: a silently cut
message or answer would be worse than a clear refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.guardrails.base import Guardrail, Side, Verdict

if TYPE_CHECKING:
    from astromesh.runs.state import RunState


class MaxLengthGuardrail(Guardrail):
    type: ClassVar[str] = "max_length"

    def __init__(self, max_chars: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.max_chars = max_chars

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> MaxLengthGuardrail:
        return cls(cfg.max_chars, **kwargs)

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        if len(text) <= self.max_chars:
            return Verdict.allow(self.name)
        subject = side.subject
        return Verdict.block(
            self.name,
            f"{len(text)} characters, limit {self.max_chars}",
            message=f"{subject} is too long (limit: {self.max_chars} characters).",
        )
