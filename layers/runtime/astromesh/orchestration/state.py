"""Typed views of ``RunState.pattern_state``: what a pattern keeps between steps.

A pattern object is shared by every run of its agent and, on Step Functions, rebuilt in each
Lambda invocation, so it must not remember anything about a run. Each pattern declares its
per-run state as a :class:`PatternState` model, loads it at the start of a step and saves it
back into the run (plain JSON) before returning a decision.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict

from astromesh.runs.state import RunState


class PatternState(BaseModel):
    """Base of each pattern's state model; unknown keys are refused (a state from another
    pattern, or a corrupted run, fails loudly instead of being half-read)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def load(cls, run: RunState) -> Self:
        return cls.model_validate(run.pattern_state)

    def save(self, run: RunState) -> None:
        run.pattern_state = self.model_dump(mode="json")
