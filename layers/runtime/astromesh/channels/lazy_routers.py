"""Routers included on the first request that could reach them, not when the app is built.

Declaring a route is most of the API's cold start: FastAPI compiles each route's request and
response models as the route is declared, and each route module imports what its handlers use
(the workflow engine, RAG, the templates, the channel hub...). A container that only serves
runs and health checks never needs most of them. So the app holds a :class:`LazyRouter` per
router module at the place where ``include_router`` would have put it; the first time a
request's path is under one of the router's prefixes, the module is imported and its router
included exactly as ``include_router`` does, at that same place in the route list. Routing
order, every route, and what a 404 or 405 answers are unchanged: a route can only match a
path under its router's prefixes (``tests/channels/test_lazy_routers.py`` checks each
table), so every router that could answer a path is loaded before the router list is past it.

Whatever reads the route list as a whole loads everything first: the OpenAPI document
(:func:`load_all`, from :mod:`astromesh.channels.openapi`), the ``Allow`` header of a 405 and
anything walking included routers (``original_router``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, get_route_path
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class RouterModule:
    """A module whose ``router`` serves only paths under ``prefixes``.

    A prefix covers itself and what is below it segment-wise (``/v1/runs`` covers
    ``/v1/runs`` and ``/v1/runs/abc``, not ``/v1/runsx``); ``/`` covers only ``/``. The
    module's router must have no lifespan or startup/shutdown handlers: included after the app
    started, they would never run."""

    module: str
    prefixes: tuple[str, ...]

    def covers(self, path: str) -> bool:
        return any(path == p or (p != "/" and path.startswith(p + "/")) for p in self.prefixes)

    def router(self) -> Any:
        return importlib.import_module(self.module).router


class LazyRouter(BaseRoute):
    """Stands in the app's route list for one router module until it is needed, then becomes
    (and is replaced by) the route ``app.include_router`` makes for it."""

    def __init__(self, app: FastAPI, spec: RouterModule) -> None:
        self._app = app
        self.spec = spec
        self._included: BaseRoute | None = None

    def load(self) -> BaseRoute:
        """Include the router at this placeholder's place (replacing it in the route list; the
        list keeps its length, so a routing loop walking it is not disturbed)."""
        if self._included is None:
            router = self.spec.router()
            routes = self._app.router.routes
            self._app.include_router(router)
            included = routes.pop()  # include_router appends; move it to our place
            routes[routes.index(self)] = included
            self._included = included
        return self._included

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self._included is None and not self.spec.covers(get_route_path(scope)):
            return Match.NONE, {}
        return self.load().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load().handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.load().url_path_for(name, **path_params)

    @property
    def original_router(self) -> Any:
        """What FastAPI's included-router route exposes; walking it loads the module."""
        return getattr(self.load(), "original_router", None)

    @property
    def include_context(self) -> Any:
        return getattr(self.load(), "include_context", None)

    def __repr__(self) -> str:
        return f"LazyRouter({self.spec.module!r})"


def include_lazily(app: FastAPI, modules: Iterable[RouterModule]) -> None:
    """Append a placeholder per module to ``app``'s routes, in order."""
    for spec in modules:
        app.router.routes.append(LazyRouter(app, spec))


def load_all(app: FastAPI) -> None:
    """Include every router still waiting (before reading the route list as a whole)."""
    for route in list(app.router.routes):
        if isinstance(route, LazyRouter):
            route.load()
