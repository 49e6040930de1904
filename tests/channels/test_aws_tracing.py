"""Powertools' Tracer only where it traces (astromesh.channels.aws.tracing)."""

from __future__ import annotations

import pytest
from aws_lambda_powertools import Tracer

from astromesh.channels.aws.tracing import lambda_tracer, tracing_enabled


def _handler(event: dict, context: object) -> dict:
    return {"ok": True}


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),  # outside Lambda
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "0"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
    ],
)
def test_tracing_follows_powertools_rule(environ, enabled):
    assert tracing_enabled(environ) is enabled
    assert isinstance(lambda_tracer("svc", environ), Tracer) is enabled


def test_without_tracing_the_handler_is_left_as_it_is():
    tracer = lambda_tracer("svc", {})
    assert tracer.capture_lambda_handler(_handler) is _handler
    assert tracer.capture_lambda_handler(_handler)({}, None) == {"ok": True}
