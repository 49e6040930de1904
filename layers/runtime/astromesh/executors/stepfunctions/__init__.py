"""The step loop on AWS Step Functions: the state machine, its executor, its Lambda side."""

from astromesh.executors.stepfunctions.definition import StateMachineDefinition, build_definition
from astromesh.executors.stepfunctions.executor import StepFunctionsExecutor

__all__ = ["StateMachineDefinition", "StepFunctionsExecutor", "build_definition"]
