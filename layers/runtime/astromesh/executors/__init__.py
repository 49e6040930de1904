"""Executors drive the step loop: in-process now, on Step Functions in AWS."""

from astromesh.executors.base import Executor
from astromesh.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
