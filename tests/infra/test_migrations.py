"""The migration custom resource's handler against a real PostgreSQL with pgvector."""

from __future__ import annotations

import psycopg
import pytest
from infra.migrations import handler

from astromesh.stores.migrations import latest_version

pytestmark = pytest.mark.infra


def _event(kind: str) -> dict:
    return {"RequestType": kind, "ResourceProperties": {"Extensions": ["vector"]}}


def test_create_enables_vector_and_migrates_once(postgres_database, monkeypatch):
    monkeypatch.setenv(handler.DSN_ENV, postgres_database)
    first = handler.on_event(_event("Create"), None)
    assert first["PhysicalResourceId"] == handler.PHYSICAL_ID
    assert first["Data"]["Applied"] == ",".join(
        str(v) for v in range(1, latest_version("postgres") + 1)
    )
    again = handler.on_event(_event("Update"), None)
    assert again["Data"]["Applied"] == "none"
    with psycopg.connect(postgres_database) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        (version,) = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    assert version == latest_version("postgres")


def test_delete_leaves_the_database_alone(monkeypatch):
    monkeypatch.delenv(handler.DSN_ENV, raising=False)
    answer = handler.on_event({"RequestType": "Delete", "PhysicalResourceId": "x"}, None)
    assert answer == {"PhysicalResourceId": "x"}
