"""The step loop on AWS Step Functions: the state machine, its executor, its Lambda side.

The names below are imported on first use (the package's ``__getattr__``), so the Lambda
side (:mod:`.worker`) loads without the definition builder and the executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.executors.stepfunctions.definition import (
        StateMachineDefinition,
        build_definition,
    )
    from astromesh.executors.stepfunctions.executor import StepFunctionsExecutor

__all__ = ["StateMachineDefinition", "StepFunctionsExecutor", "build_definition"]


def __getattr__(name: str) -> Any:
    if name in ("StateMachineDefinition", "build_definition"):
        from astromesh.executors.stepfunctions import definition

        return getattr(definition, name)
    if name == "StepFunctionsExecutor":
        from astromesh.executors.stepfunctions.executor import StepFunctionsExecutor

        return StepFunctionsExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
