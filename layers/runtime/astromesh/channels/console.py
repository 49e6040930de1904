"""The web console at ``/``: plain HTML, CSS and JavaScript shipped as package data.

No build step and nothing fetched from a CDN: a few files in ``channels/static/`` served
from memory, under a Content-Security-Policy that allows only this origin (and its
WebSocket). The page talks to the same ``/v1`` API as any client: ``GET /v1/agents`` to
list agents, the WebSocket to chat, ``GET /v1/runs/{id}`` for a finished run's steps,
``GET /v1/usage`` for the tenant's spending by day and agent (``usage.js``), the workflow
approvals waiting for a person, approved or rejected from the page (``approvals.js``),
``GET /v1/traces/{run_id}`` for a finished run's trace waterfall (``trace.js``); the
API key typed in is kept in the browser's ``localStorage``, never by the server.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from astromesh.errors import NotFoundError

router = APIRouter(include_in_schema=False)

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "usage.js": "text/javascript; charset=utf-8",
    "approvals.js": "text/javascript; charset=utf-8",
    "trace.js": "text/javascript; charset=utf-8",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:;"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (files("astromesh.channels") / "static" / name).read_bytes()


def _serve(name: str) -> Response:
    return Response(_read(name), media_type=_TYPES[name], headers=_HEADERS)


@router.get("/")
async def console_page() -> Response:
    return _serve("index.html")


@router.get("/console/{name}")
async def console_asset(name: str) -> Response:
    if name not in _TYPES:
        raise NotFoundError(f"no console file {name!r}")
    return _serve(name)
