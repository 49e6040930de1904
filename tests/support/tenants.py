"""Tenants for the security tests: real stores, keys of each role, agents each tenant posts.

Two tenants register an agent of the same name, each pointing at its own scripted model
server, so which server answered says whose agent ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from astromesh.auth import KeyStore, Role
from astromesh.stores.base import StateBackend
from astromesh.stores.factory import open_backend
from tests.support.agents import agent_document, primary

STORES = ("sqlite", "postgres")
"""The durable stores every test here runs against (the in-memory one is tested elsewhere)."""


async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    """A fresh SQLite file or PostgreSQL schema, as ``request.param`` says; for fixtures."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_schema")
        state = open_backend("postgres", postgres_dsn=dsn)
    else:
        state = open_backend("sqlite", sqlite_path=tmp_path / "state.db")
    await state.open()
    try:
        yield state
    finally:
        await state.close()


def posted(url: str, name: str = "support", *, display: str = "Support") -> dict[str, Any]:
    """An agent document whose model is the scripted server at ``url``."""
    document = agent_document(name, model=primary(url))
    document["spec"]["identity"]["display_name"] = display
    return document


@dataclass
class Caller:
    """One API key: its headers on a client of the app."""

    client: httpx.AsyncClient
    key: str
    tenant: str
    role: Role

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.headers, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, headers=self.headers, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.put(path, headers=self.headers, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.delete(path, headers=self.headers, **kwargs)

    async def run(
        self, agent: str, query: str = "hi", *, session_id: str = "default", **kwargs: Any
    ) -> httpx.Response:
        body = {"query": query, "session_id": session_id}
        return await self.post(f"/v1/agents/{agent}/run", json=body, **kwargs)


async def caller(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: str,
    role: Role = Role.DEVELOPER,
    agents: tuple[str, ...] = ("*",),
) -> Caller:
    """A new key of ``tenant`` with ``role``, ready to call ``app`` through ``client``."""
    keys: KeyStore = await app.state.services.keys()
    issued = await keys.issue(tenant, agents, role=role, label=f"{tenant}-{role.value}")
    return Caller(client, issued.plaintext, tenant, role)
