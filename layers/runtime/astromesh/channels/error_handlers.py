"""The app's exception handlers: every failure as ``{"error": {"code", "message"}, "detail"}``
(:func:`~astromesh.channels.errors.error_body`).

Installed on the app so that a route simply raises; nothing a caller receives ever contains
a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from astromesh.channels.errors import (
    DeliveryNotAccepted,
    InvalidAgent,
    TooManyRuns,
    Unauthorized,
    error_body,
)
from astromesh.errors import AstromeshError, StateUnavailable
from astromesh.text_boundary import InvalidText, repair_value

logger = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    # Messages may quote what the caller sent: repaired, so the body always encodes.
    body = repair_value(error_body(code, message, **extra))
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map runtime errors, validation errors and HTTP errors to the JSON error shape."""
    app.add_exception_handler(AstromeshError, _astromesh_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


async def _astromesh_error(_request: Request, exc: AstromeshError) -> JSONResponse:
    extra: dict[str, Any] = {}
    headers: dict[str, str] | None = None
    if isinstance(exc, InvalidAgent):
        extra["issues"] = [issue.to_dict() for issue in exc.issues]
    if isinstance(exc, InvalidText):
        extra["fields"] = [issue.to_dict() for issue in exc.issues]
    if isinstance(exc, TooManyRuns):
        headers = {"Retry-After": "1"}
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, StateUnavailable | DeliveryNotAccepted):  # retrying is safe
        headers = {"Retry-After": str(exc.retry_after)}
    if exc.status >= 500 and exc.status != 501:
        logger.error("code=<%s> | %s", exc.code, exc.message)
    return error_response(exc.status, exc.code, exc.message, headers, **extra)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        detail = next(err for err in errors if err.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, "bad_json", f"request body is not valid JSON: {reason}")
    fields = [
        {
            "field": _field_path(err.get("loc", ())),
            "message": err.get("msg", ""),
            "type": err.get("type"),
        }
        for err in errors
    ]
    if (
        len(fields) == 1
        and fields[0]["field"] == ""
        and fields[0]["type"] == "model_attributes_type"
    ):
        fields[0]["message"] = (
            "the request body must be a JSON object (Content-Type: application/json)"
        )
    summary = "; ".join(f"{f['field'] or '(body)'}: {f['message']}" for f in fields)
    return error_response(422, "validation_error", summary, fields=fields)


def _field_path(loc: Sequence[Any]) -> str:
    """``body.context.x`` -> ``context.x``; list indexes as ``[0]``; where kept for query/path."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
}


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = f"{request.method} is not served at {request.url.path}; use {', '.join(allowed)}"
    if exc.status_code == 400 and message == "There was an error parsing the body":
        message = "the request body could not be read as JSON (too deeply nested, or not text)"
    return error_response(exc.status_code, code, message, headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (Starlette's own ``Allow``
    names only the first route matching the path: ``GET`` for ``/v1/agents``, which also
    takes ``POST``). Asked of the routes themselves, method by method, so included routers
    answer for their own routes. A path some route names literally is that route's alone."""
    path = request.scope.get("path")
    served: list[tuple[str, str | None]] = []  # (method, path template of the route)
    for method in _METHODS:
        for route in _leaves(request.app.router.routes):
            if route.matches({**request.scope, "method": method})[0] is Match.FULL:
                served.append((method, getattr(route, "path", None)))
    # A literal path wins over a template that also matches it, as in API Gateway:
    # /v1/workflows/register is the register route's, not GET /v1/workflows/{name}'s.
    literal = {method for method, template in served if template == path}
    methods = literal or {method for method, _ in served}
    return [method for method in _METHODS if method in methods]


def _leaves(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes themselves, through FastAPI's wrappers of included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        else:
            yield route
