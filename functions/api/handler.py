"""API Gateway REST -> the ``/v1`` FastAPI app, through Mangum.

The runtime and the app are built once per container, at init (where Lambda gives the CPU
boost), and reused by every warm invocation. Auth is always required here, and async runs
answer 501 until the Step Functions executor exists (a frozen Lambda cannot finish a
background task). Settings: ``ASTROMESH_AGENTS_DIR`` and the ``ASTROMESH_STATE_*`` /
``ASTROMESH_POSTGRES_DSN`` variables, as for the CLI.

A direct invocation with ``{"astromesh_admin": {...}}`` (not an API Gateway event) creates,
lists or revokes API keys in the stage's store: how an operator gets the first key of a
deployed stage, whose database no laptop reaches (``astromesh.channels.aws.admin``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from astromesh.coldstart import init_phase

with init_phase():  # the init without the cyclic GC, its objects frozen after (see module)
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mangum import Mangum

    from astromesh.channels import ServerSettings, create_app
    from astromesh.channels.aws.admin import ADMIN_FIELD, handle_admin, is_admin_event
    from astromesh.channels.aws.tracing import lambda_tracer
    from astromesh.runtime import AgentRuntime
    from astromesh.telemetry.provider import flush

    SERVICE = "astromesh-api"

    logger = Logger(service=SERVICE)
    tracer = lambda_tracer(SERVICE)  # X-Ray's SDK is imported only when tracing is on
    metrics = Metrics(namespace="Astromesh", service=SERVICE)

    app = create_app(AgentRuntime(), ServerSettings.from_env(os.environ, lambda_=True))
    _adapter = Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_admin_event(event):
        return _admin(event, context)
    return _http(event, context)


@logger.inject_lambda_context
def _admin(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Key administration; the event's action is logged, never the answer (it holds a key)."""
    request = event[ADMIN_FIELD]
    logger.info("admin request", extra={"action": request.get("action")})
    # Mangum's loop: the app's connections (PostgreSQL, Redis) belong to it.
    return asyncio.get_event_loop().run_until_complete(handle_admin(app.state.services, request))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def _http(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        response = _adapter(event, context)
    finally:
        flush()  # the runs' spans, before the container may be frozen (OTLP export only)
    status = int(response.get("statusCode", 500))
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    if status >= 500:
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    elif status >= 400:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return response
