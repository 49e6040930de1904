"""What ``/openapi.json`` says each route answers besides success: one table, used by every
router, so the document lists every status a route can give and the error body each has;
and the text rule (:mod:`astromesh.text_boundary`) written into the schemas, so what the
document calls valid is what the API accepts.

Routes name their statuses with :func:`errors`, composed from the families below (every
authenticated route can answer :data:`AUTHENTICATED`; every route reading a JSON body,
:data:`WITH_BODY`...). Every route also answers ``422 invalid_text`` for a path or query
string that is not valid text (:class:`~astromesh.channels.middleware.TextBoundary` checks
them before routing), so 422 is in every family. ``405`` (a method the path does not serve)
is not listed per operation, since an operation is a method; it carries ``Allow`` with the
methods the path does serve, as the API description says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from astromesh.channels.lazy_routers import load_all
from astromesh.text_boundary import PATTERN

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}

DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read: not JSON (`bad_json`), nested too deeply, or not the"
    " shape this route reads (`bad_request`)",
    401: "No API key, or one that is unknown or revoked (`unauthorized`; `WWW-Authenticate`)",
    403: "The key may not do this: its role, its agents, or another tenant (`forbidden`)",
    404: "The agent, run, pipeline or channel does not exist for this key (`not_found`)",
    409: "The resource is not in a state for this (`conflict`, `agent_paused`)",
    413: "The body is larger than the limit (`payload_too_large`)",
    422: "Invalid input: `validation_error` (with `fields`), `invalid_text` (a string with a lone"
    " surrogate or NUL, or bytes that are not UTF-8; `fields` name each, with the line in a"
    " posted document), `too_deep` (a `context` nested deeper than 64 levels), `invalid_agent`"
    " (with `issues`), `invalid_request`,"
    " `guardrail_blocked`",
    429: "This instance is running as many runs as it may (`too_many_runs`); retry after"
    " `Retry-After`",
    501: "The feature is not available in this deployment (the code says which)",
    502: "The embedding or model server answered an error (`embedding_error`, `provider_error`)",
    503: "A state store is unreachable (`state_unavailable`), no model could answer"
    " (`provider_unavailable`), or a webhook delivery was not accepted"
    " (`delivery_not_accepted`); nothing was half-done, retry after `Retry-After`",
    504: "The embedding or model server did not answer in time (`provider_timeout`)",
}

AUTHENTICATED = (401, 403, 422, 503)
"""Every route behind an API key: the key is checked against the key store."""
WITH_BODY = (400, 413, 422)
"""Every route reading a JSON body."""
AGENT = (404,)
"""Every route naming an agent, run, pipeline or channel."""
RUNS = (409, 429, 503)
"""Every route starting a run: a paused agent, a busy instance, no model."""


def errors(*families: tuple[int, ...] | int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route answering the statuses of ``families`` (tuples above,
    or single statuses), each with the error body and its description."""
    statuses = sorted({s for f in families for s in (f if isinstance(f, tuple) else (f,))} | {422})
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": DESCRIPTIONS[status],
            # Always JSON, whatever the route's own media type (a text/plain handshake's 404).
            "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
        }
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[status] = response
    return responses


_ERROR_REF = "#/components/schemas/ErrorResponse"
_JSON_VALUE = "JsonValue"
_JSON_VALUE_REF = f"#/components/schemas/{_JSON_VALUE}"
_FREE_FORM_KEYS = {"title", "description", "default", "examples"}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (served at ``/openapi.json``) the document FastAPI builds, plus
    the error body's schema and the text rule on every string of a request or response:
    ``pattern`` :data:`~astromesh.text_boundary.PATTERN` on strings, keys of free-form
    objects too, and free-form values (``context``, a tool's output) as ``JsonValue``:
    any JSON whose strings follow the rule. Built once, on first request, after every
    router the app includes lazily is loaded (the document names every route)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            load_all(app)
            document = build()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in _error_schemas().items():
                components.setdefault(name, schema)
            for schema in _request_and_response_schemas(document):
                _apply_text_rule(schema)
            components[_JSON_VALUE] = _json_value()
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_schemas() -> dict[str, Any]:
    from astromesh.channels.schemas import ErrorResponse  # the routes' models: with the routes

    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {"ErrorResponse": schema, **definitions}


def _json_value() -> dict[str, Any]:
    return {
        "title": "JsonValue",
        "description": "Any JSON value whose strings and keys are valid text (no lone"
        " surrogate, no NUL)",
        "anyOf": [
            {"type": "string", "pattern": PATTERN},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": {"$ref": _JSON_VALUE_REF}},
            {
                "type": "object",
                "propertyNames": {"pattern": PATTERN},
                "additionalProperties": {"$ref": _JSON_VALUE_REF},
            },
        ],
    }


def _request_and_response_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas to put the rule in: components, parameters, bodies (JSON ones)."""
    found = list(document.get("components", {}).get("schemas", {}).values())
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            found += [p["schema"] for p in operation.get("parameters", []) if "schema" in p]
            body = operation.get("requestBody", {}).get("content", {})
            found += [m["schema"] for t, m in body.items() if "json" in t and "schema" in m]
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                found += [m["schema"] for t, m in content.items() if "json" in t and "schema" in m]
    return found


def _apply_text_rule(schema: dict[str, Any]) -> None:
    """Put the rule on ``schema`` and every schema inside it, in place."""
    pending = [schema]
    while pending:
        node = pending.pop()
        kind = node.get("type")
        if kind == "string" and not {"pattern", "enum", "const", "format"} & node.keys():
            node["pattern"] = PATTERN
        if kind == "object":
            # Fields a model does not declare are ignored (or kept), never refused, but the
            # text in them is checked like the rest of the body.
            extra = node.get("additionalProperties", True)
            if extra is True:
                node["additionalProperties"] = {"$ref": _JSON_VALUE_REF}
            if extra is not False:
                node.setdefault("propertyNames", {"pattern": PATTERN})
        for key in ("properties", "patternProperties", "$defs"):
            pending += [child for child in node.get(key, {}).values() if isinstance(child, dict)]
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            children = node.get(key, [])
            for index, child in enumerate(children):
                if _is_free_form(child):
                    children[index] = {"$ref": _JSON_VALUE_REF}
                elif isinstance(child, dict):
                    pending.append(child)
        for key in ("items", "additionalProperties"):
            child = node.get(key)
            if isinstance(child, dict):
                pending.append(child)
        for name, child in list(node.get("properties", {}).items()):
            if _is_free_form(child):
                node["properties"][name] = {**child, "$ref": _JSON_VALUE_REF}


def _is_free_form(schema: Any) -> bool:
    """``{}`` (or only a title...): any value at all (a pydantic ``Any``)."""
    return isinstance(schema, dict) and not (schema.keys() - _FREE_FORM_KEYS)
