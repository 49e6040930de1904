"""Routers included on first use (astromesh.channels.lazy_routers): the same routes, in the
same order, with the same document, whichever request comes first."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute

from astromesh.channels import rest
from astromesh.channels.app import CONSOLE, WEBHOOKS, WEBSOCKET
from astromesh.channels.lazy_routers import LazyRouter, RouterModule, load_all

MODULES = (*rest.ROUTERS, WEBSOCKET, WEBHOOKS, CONSOLE)


def _leaves(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _leaves(inner.routes) if inner is not None else (route,)


def _order(app: FastAPI) -> list[tuple[str, tuple[str, ...]]]:
    """``(path, methods)`` of every route, in routing order (loads what is still waiting)."""
    return [
        (str(getattr(r, "path", "")), tuple(sorted(getattr(r, "methods", None) or ())))
        for r in _leaves(app.router.routes)
    ]


def _waiting(app: FastAPI) -> list[str]:
    return [r.spec.module for r in app.router.routes if isinstance(r, LazyRouter)]


@pytest.mark.parametrize("spec", MODULES, ids=lambda spec: spec.module.rsplit(".", 1)[-1])
def test_each_router_serves_only_paths_under_its_prefixes(spec: RouterModule):
    """What makes loading on a prefix safe: no route of the module outside its prefixes
    (else a path could reach a later route while the module that should answer still waits),
    and no lifespan or startup hook (included after start-up, it would never run)."""
    router = importlib.import_module(spec.module).router
    paths = [route.path for route in router.routes]
    assert paths
    assert [path for path in paths if not spec.covers(path)] == []
    assert router.on_startup == [] and router.on_shutdown == []
    assert type(router.lifespan_context).__name__ == "_DefaultLifespan"


def test_prefixes_cover_by_whole_segments():
    spec = RouterModule("m", ("/v1/runs", "/"))
    assert spec.covers("/v1/runs") and spec.covers("/v1/runs/abc/cancel") and spec.covers("/")
    assert not spec.covers("/v1/runsx") and not spec.covers("/v1/run") and not spec.covers("/x")


async def test_a_request_loads_only_the_routers_under_its_path(make_app, client_for):
    app = make_app()
    assert _waiting(app) == [spec.module for spec in MODULES]
    async with client_for(app) as client:
        assert (await client.get("/v1/health")).status_code == 200
        assert (await client.get("/v1/nowhere")).status_code == 404
    assert "astromesh.channels.rest.health" not in _waiting(app)
    assert len(_waiting(app)) == len(MODULES) - 1


async def test_routes_keep_their_order_and_answers_whatever_is_loaded_first(make_app, client_for):
    """Loading the workflow and the agents' routers on a request, then the rest, gives the
    route list (and so the routing) an app loading all at once has; the trailing-slash,
    405 and 404 answers are those of the full app."""
    eager, lazy = make_app(), make_app()
    load_all(eager)
    async with client_for(lazy) as client:
        listed = await client.get("/v1/workflows/")
        wrong_method = await client.patch("/v1/agents")
        unknown = await client.get("/v1/agents/nobody/chain")
    assert listed.status_code in (200, 401)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, POST"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert _order(lazy) == _order(eager)
    assert _waiting(lazy) == _waiting(eager) == []


async def test_the_openapi_document_names_every_route_whatever_was_loaded(make_app, client_for):
    fresh, used = make_app(), make_app()
    async with client_for(used) as client:
        await client.get("/v1/health")
        await client.get("/")
        used_document: dict[str, Any] = (await client.get("/openapi.json")).json()
    assert used_document == fresh.openapi()
    assert {"/v1/health", "/v1/workflows", "/v1/channels/{channel}/webhook"} <= set(
        used_document["paths"]
    )
    assert _waiting(fresh) == []
