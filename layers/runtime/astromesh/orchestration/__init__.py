"""Orchestration patterns: ``step`` policies over the shared step -> act -> observe loop."""

from astromesh.errors import ConfigurationError
from astromesh.orchestration.base import (
    Act,
    Decision,
    Fail,
    Finish,
    Pattern,
    StepContext,
    decision_from_dict,
    decision_to_dict,
)
from astromesh.orchestration.react import ReActPattern

RUNNABLE_PATTERNS = ("react",)


def build_pattern(name: str, *, tool_calling: str = "auto") -> Pattern:
    """The step policy for ``spec.orchestration.pattern``."""
    if name == "react":
        return ReActPattern(tool_calling=tool_calling)
    raise ConfigurationError(
        f"orchestration pattern {name!r} validates but is not runnable in this build yet "
        f"(runnable: {', '.join(RUNNABLE_PATTERNS)})"
    )


__all__ = [
    "Act",
    "Decision",
    "Fail",
    "Finish",
    "Pattern",
    "ReActPattern",
    "StepContext",
    "build_pattern",
    "decision_from_dict",
    "decision_to_dict",
]
