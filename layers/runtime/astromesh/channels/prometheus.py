"""``GET /metrics``: the local server's Prometheus scrape endpoint.

Served only by an app given a :class:`~astromesh.telemetry.prometheus.PrometheusExporter`
(the local server's, :func:`astromesh.channels.app.create_dev_app`); the Lambda app has none,
its metrics going to CloudWatch as EMF. Without the ``server`` extra's packages
(:func:`load_exporter` returns ``None``) the route is simply absent.

Outside ``/v1`` (Prometheus' conventional path, not part of the client contract) and left out
of the OpenAPI document for the same reason.

Auth, deliberately unlike ``/v1/health``: health says only that the server is up, while the
metrics name every agent with its run counts and spend, which is operator data. So the route
takes the same API keys as the rest of the app (open only while the whole server is open:
no key exists and ``ASTROMESH_AUTH`` is not ``required``), and a key must be allowed every
agent (``--agents '*'``): a key limited to some agents would otherwise learn the others'
names, which the ``/v1`` routes never tell it. Prometheus sends the key with
``authorization: {credentials: <key>}`` (or ``bearer_token_file``) in its scrape config.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response

from astromesh.auth import ALL_AGENTS
from astromesh.channels.errors import Forbidden
from astromesh.channels.security import CurrentPrincipal

if TYPE_CHECKING:
    from astromesh.telemetry.prometheus import PrometheusExporter

logger = logging.getLogger(__name__)

PATH = "/metrics"


def load_exporter() -> PrometheusExporter | None:
    """A new exporter, or ``None`` when the server extra's packages cannot be imported (the
    light install, or an exporter too old for a registry of its own)."""
    try:
        from astromesh.telemetry.prometheus import PrometheusExporter
    except ImportError as exc:
        logger.info("GET %s is off (%s); pip install 'astromesh[server]' to serve it", PATH, exc)
        return None
    return PrometheusExporter()


def metrics_router(exporter: PrometheusExporter) -> APIRouter:
    """The route serving ``exporter``'s metrics (one router per app, as each app has its own
    exporter)."""
    router = APIRouter(include_in_schema=False)

    @router.get(PATH)
    async def metrics(request: Request, principal: CurrentPrincipal) -> Response:
        if ALL_AGENTS not in principal.agents:
            raise Forbidden(
                "the metrics name every agent: this API key may not read them"
                " (a key created with --agents '*' may)"
            )
        body, content_type = exporter.render(request.headers.get("accept"))
        return Response(content=body, media_type=content_type)

    return router


__all__ = ["PATH", "load_exporter", "metrics_router"]
