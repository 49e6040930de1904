"""Schema migrations for the SQL backends, applied in order and recorded in ``schema_version``.

Each dialect has a folder of ``NNNN_description.sql`` files shipped as package data. A backend
runs :func:`migrate_sqlite` or :func:`migrate_postgres` when it opens: inside one transaction
it reads the highest applied version, applies every newer file and records each one, so a
crash half-way leaves the database at the old version rather than in between, and re-running
applies nothing. A database already migrated past what this code knows (a newer Astromesh
wrote it) is refused with :class:`SchemaVersionError` instead of being used blindly.

Adding a migration: drop the next numbered file into the dialect's folder; never edit one
that has shipped.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

from astromesh.errors import ConfigurationError
from astromesh.runs.state import utcnow
from astromesh.stores._common import sortable_timestamp

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg import AsyncConnection

__all__ = [
    "Dialect",
    "Migration",
    "SchemaVersionError",
    "latest_version",
    "load_migrations",
    "migrate_postgres",
    "migrate_sqlite",
    "pending_migrations",
]

Dialect = Literal["sqlite", "postgres"]

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Serialises concurrent openers (several Lambda cold starts, several workers) on PostgreSQL:
# only one of them migrates, the others wait and then find nothing left to do.
_PG_LOCK_ID = 0x61737472_6F6D6573  # "astromes"


class SchemaVersionError(ConfigurationError):
    """The database's schema is newer than this code understands (downgrade or mixed deploy)."""

    code = "schema_version_error"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL script."""

    version: int
    name: str
    sql: str


@cache
def load_migrations(dialect: Dialect) -> tuple[Migration, ...]:
    """The dialect's migrations in version order, read from the package with importlib.resources.

    Versions must run 1, 2, 3... without gaps or duplicates: a gap would mean a file missing
    from the installed package, and applying around it would silently skip schema.
    """
    folder = resources.files(__name__).joinpath(dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise ConfigurationError(
            f"{dialect} migrations must be numbered 1..N without gaps, found "
            f"{[m.version for m in found]}"
        )
    return tuple(found)


def latest_version(dialect: Dialect) -> int:
    """The schema version a database has once every shipped migration is applied."""
    migrations = load_migrations(dialect)
    return migrations[-1].version if migrations else 0


def pending_migrations(current: int, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations newer than ``current``.

    Raises:
        SchemaVersionError: ``current`` is beyond the newest migration known here.
    """
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaVersionError(
            f"database schema is at version {current} but this Astromesh only knows "
            f"versions up to {latest}; upgrade Astromesh (or point it at another database)"
        )
    return [m for m in migrations if m.version > current]


def _sqlite_statements(script: str) -> list[str]:
    """Split a script into statements with SQLite's own tokenizer (``complete_statement``).

    ``executescript`` would be simpler but commits any open transaction first, which would
    break the all-or-nothing guarantee.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = "\n".join(
        line for line in buffer.splitlines() if line.strip() and not line.strip().startswith("--")
    )
    if rest:
        raise ConfigurationError(f"incomplete SQL statement at the end of a migration: {rest!r}")
    return statements


def migrate_sqlite(
    conn: sqlite3.Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Bring a SQLite database up to date; return the versions applied (empty when current).

    ``conn`` must be in autocommit mode (``isolation_level=None``) so this function controls
    the transaction. ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes
    opening the same file cannot both migrate.
    """
    todo_source = load_migrations("sqlite") if migrations is None else migrations
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        (current,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        applied: list[int] = []
        for migration in pending_migrations(current, todo_source):
            for statement in _sqlite_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (migration.version, sortable_timestamp(utcnow())),
            )
            applied.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


async def migrate_postgres(
    conn: AsyncConnection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Bring a PostgreSQL database up to date; return the versions applied (empty when current).

    Runs in one transaction (PostgreSQL DDL is transactional) under an advisory lock, so
    concurrent openers queue up and all but the first find nothing to do.
    """
    todo_source = load_migrations("postgres") if migrations is None else migrations
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = await cursor.fetchone()
        current = int(row[0]) if row is not None else 0
        for migration in pending_migrations(current, todo_source):
            # No parameters: psycopg sends the script with the simple query protocol, which
            # accepts several statements at once.
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_version (version) VALUES (%s)", (migration.version,)
            )
            applied.append(migration.version)
    return applied
