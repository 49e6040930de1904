"""Powertools' Tracer only where it traces: the X-Ray SDK stays out of a cold start without it.

``Tracer()`` imports ``aws_xray_sdk.core`` as it is built, even when it then disables itself
(outside Lambda, under SAM local, or with ``POWERTOOLS_TRACE_DISABLED``): ~0.3 s of a cold
start spent on nothing. :func:`lambda_tracer` applies Powertools' own rule first and builds
the Tracer only when tracing is on; otherwise its stand-in's decorators return the function
unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_TRUTHY = ("1", "true", "yes", "on", "y", "t")


class HandlerTracer(Protocol):
    def capture_lambda_handler(self, lambda_handler: F) -> F: ...


class _Untraced:
    """What the handlers use of ``Tracer`` when tracing is off: decorators that do nothing."""

    disabled = True

    def capture_lambda_handler(self, lambda_handler: F) -> F:
        return lambda_handler


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Powertools' rule (``Tracer._is_tracer_disabled``): on in Lambda unless
    ``POWERTOOLS_TRACE_DISABLED`` is truthy; off outside Lambda, under SAM local or Chalice."""
    env = os.environ if environ is None else environ
    if env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUTHY:
        return False
    in_lambda = bool(env.get("LAMBDA_TASK_ROOT"))
    return in_lambda and not (env.get("AWS_SAM_LOCAL") or env.get("AWS_CHALICE_CLI_MODE"))


def lambda_tracer(service: str, environ: Mapping[str, str] | None = None) -> HandlerTracer:
    """A Powertools ``Tracer`` for ``service`` when tracing is on, else a no-op stand-in."""
    if not tracing_enabled(environ):
        return _Untraced()
    from aws_lambda_powertools import Tracer

    return Tracer(service=service)
