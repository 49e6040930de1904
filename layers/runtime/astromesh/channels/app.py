"""``create_app``: the FastAPI app of the ``/v1`` API (REST, SSE and the local WebSocket).

The runtime is passed in and reached by routes through FastAPI dependencies
(``app.state.services``), never through module globals, so tests, the local server and the
Lambda handler each build their own app around their own runtime.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from astromesh import __version__
from astromesh.channels import openapi, rest
from astromesh.channels.error_handlers import install_error_handlers
from astromesh.channels.lazy_routers import RouterModule, include_lazily
from astromesh.channels.messaging.hub import close_hub
from astromesh.channels.middleware import BodyLimit, ErrorBoundary, TextBoundary
from astromesh.channels.prometheus import load_exporter, metrics_router
from astromesh.channels.services import Services
from astromesh.channels.settings import ServerSettings
from astromesh.channels.trace_context import TraceParent
from astromesh.channels.trailing_slash import TrailingSlash
from astromesh.runtime import AgentRuntime
from astromesh.telemetry.metrics import metrics_from_env

if TYPE_CHECKING:
    from astromesh.telemetry.prometheus import PrometheusExporter

logger = logging.getLogger("astromesh.channels")

DESCRIPTION = """\
Astromesh's `/v1` API, compatible with upstream Astromesh clients.
Authenticate with `Authorization: Bearer <key>` or `x-api-key: <key>`
(keys come from `astromesh keys create`).
Errors are `{"error": {"code", "message"}, "detail": message}`
(`detail` is upstream's FastAPI field, always the message string).
Every path also answers with one trailing slash, without a redirect."""

WEBSOCKET = RouterModule("astromesh.channels.ws", ("/v1/ws",))
WEBHOOKS = RouterModule("astromesh.channels.messaging.routes", ("/v1/channels",))
CONSOLE = RouterModule("astromesh.channels.console", ("/", "/console"))


def create_app(
    runtime: AgentRuntime,
    settings: ServerSettings | None = None,
    *,
    owns_runtime: bool = False,
    prometheus: PrometheusExporter | None = None,
) -> FastAPI:
    """Build the app serving ``runtime``.

    Args:
        runtime: the agents to serve (and the state store runs, registered agents and API
            keys live in).
        settings: defaults to :meth:`ServerSettings.from_env`.
        owns_runtime: close ``runtime`` when the app shuts down, and run its models'
            background health checks while it serves (the local server's factory).
        prometheus: serve its metrics at ``GET /metrics`` (the local server's; the runtime
            should record on its meter, see :mod:`astromesh.telemetry.prometheus`).
    """
    settings = settings or ServerSettings.from_env()
    services = Services.build(runtime, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Open the stores now so a bad configuration fails at start-up, not on a request.
        keys = await services.keys()
        # Build every file agent now: one that cannot run here is skipped, logged with its
        # file, line and why, and never listed as runnable (see AgentRuntime.check_agents).
        await runtime.check_agents()
        # Carry on the workflow runs a previous server left unfinished: due waits fire,
        # expired approvals follow on_reject, interrupted steps run again.
        await services.workflows()
        if settings.auth == "required":
            logger.info("auth: API keys required")
        elif await keys.has_active():
            logger.info("auth: API keys required (keys exist)")
        else:
            logger.warning(
                "auth: no API key exists, serving OPEN (development mode), every caller as admin"
                " of tenant 'default'; create one with 'astromesh keys create --tenant T"
                ' --agents "*" --role admin\' or set ASTROMESH_AUTH=required'
            )
        async with contextlib.AsyncExitStack() as stack:
            if owns_runtime:
                # A long-lived server (``astromesh dev``) keeps its models' health evidence
                # fresh in the background (astromesh.models.health); Lambda never runs a
                # lifespan (Mangum's is off), and an app given a runtime leaves it alone.
                await stack.enter_async_context(runtime.health_checks.running())
            try:
                yield
            finally:
                await close_hub(_app)  # the webhooks' hub, if one was built
                await services.aclose()
                if owns_runtime:
                    await runtime.close()

    app = FastAPI(
        title="Astromesh",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        redirect_slashes=False,  # TrailingSlash serves both spellings; never a 307
        **_lenient_json(),
    )
    app.state.services = services
    install_error_handlers(app)
    openapi.install(app)
    include_lazily(app, (*rest.ROUTERS, WEBSOCKET))
    if prometheus is not None:
        app.include_router(metrics_router(prometheus))
    include_lazily(app, (WEBHOOKS, CONSOLE))  # the console at /
    app.add_middleware(TraceParent)  # a run started here joins the caller's trace
    app.add_middleware(TrailingSlash)  # /v1/agents/ is /v1/agents, no redirect (upstream CLI)
    app.add_middleware(TextBoundary)  # inside BodyLimit: the bodies it reads are bounded
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ErrorBoundary)  # added last: outermost of ours
    for issue in runtime.issues:
        logger.warning("skipped: %s", issue)
    for warning in runtime.config.warnings:  # upstream fields that mean nothing here
        logger.info("upstream field: %s", warning)
    return app


def _lenient_json() -> dict[str, bool]:
    """Parse a body sent without Content-Type as JSON, as FastAPI did before it became strict:
    upstream clients (and ``curl --data``-style callers) rely on it."""
    if "strict_content_type" in inspect.signature(FastAPI.__init__).parameters:
        return {"strict_content_type": False}
    return {}


def create_dev_app() -> FastAPI:
    """The local server's app (``astromesh dev``), a factory so ``--reload`` can re-import it.

    Reads ``ASTROMESH_AGENTS_DIR`` and the state settings like the CLI. The Prometheus
    exporter comes first so the runtime records on its meter; without the server extra's
    packages there is none and no ``/metrics``.
    """
    prometheus = load_exporter()
    metrics = metrics_from_env(meter=prometheus.meter if prometheus is not None else None)
    return create_app(
        AgentRuntime(metrics=metrics),
        ServerSettings.from_env(),
        owns_runtime=True,
        prometheus=prometheus,
    )
