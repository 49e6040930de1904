"""Custom resource: enable pgvector and apply the runtime's schema migrations on deploy.

Invoked by the CDK provider framework on Create and Update (Delete leaves the database
alone). Runs with the runtime layer, so the migrations applied are exactly the ones the
deployed functions expect (``astromesh.stores.migrations``), before any function opens the
database. ``CREATE EXTENSION`` needs the RDS master user (``rds_superuser``), which is why
this is a deploy step and not something a function does at cold start.

The DSN arrives in ``ASTROMESH_POSTGRES_DSN``, filled from the database's secret by the
layer's cold-start resolver like every other function.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

PHYSICAL_ID = "astromesh-postgres-schema"
DSN_ENV = "ASTROMESH_POSTGRES_DSN"


async def migrate(dsn: str, extensions: Sequence[str]) -> list[int]:
    """Create ``extensions`` (if missing) and apply the pending migrations; return them."""
    import psycopg
    from psycopg import sql

    from astromesh.stores.migrations import migrate_postgres

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for name in extensions:
            await conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
            )
        return await migrate_postgres(conn)


def on_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The provider framework's onEvent: answer with the versions applied this time."""
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_ID)}
    extensions = event["ResourceProperties"].get("Extensions", [])
    applied = asyncio.run(migrate(os.environ[DSN_ENV], extensions))
    return {
        "PhysicalResourceId": PHYSICAL_ID,
        "Data": {"Applied": ",".join(str(v) for v in applied) or "none"},
    }
