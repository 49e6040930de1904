"""Executors drive the step loop: in-process now, on Step Functions in AWS.

The names below are imported on first use (the package's ``__getattr__``): the Lambda
workers import :mod:`astromesh.executors.stepfunctions.worker` through this package and must
not load the in-process executor with it (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.executors.base import Executor
    from astromesh.executors.local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]


def __getattr__(name: str) -> Any:
    if name == "Executor":
        from astromesh.executors.base import Executor

        return Executor
    if name == "LocalExecutor":
        from astromesh.executors.local import LocalExecutor

        return LocalExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
