"""Run state: the document the step loop reads and writes."""

from astromesh.runs.state import (
    ActionResult,
    RunState,
    RunStatus,
    RunUsage,
    StepRecord,
    UsageLine,
)

__all__ = ["ActionResult", "RunState", "RunStatus", "RunUsage", "StepRecord", "UsageLine"]
