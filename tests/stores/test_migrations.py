"""Schema migrations: fresh databases reach the latest version, reruns do nothing, a database
from a newer Astromesh is refused, and a failing migration leaves no trace."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from astromesh.models.types import Message
from astromesh.runs.state import RunState
from astromesh.stores._journal import HEAD_EXCLUDE
from astromesh.stores.migrations import (
    Migration,
    SchemaVersionError,
    latest_version,
    load_migrations,
    migrate_postgres,
    migrate_sqlite,
    pending_migrations,
)
from astromesh.stores.postgres import PostgresBackend
from astromesh.stores.sqlite import SQLiteBackend


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_packaged_migrations_are_numbered_from_one(dialect: str) -> None:
    migrations = load_migrations(dialect)  # type: ignore[arg-type]
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert latest_version(dialect) == len(migrations)  # type: ignore[arg-type]


def test_postgres_initial_schema_does_not_need_pgvector() -> None:
    # pgvector belongs to the RAG tables' own migration; run state must work without it.
    text = load_migrations("postgres")[0].sql.lower()
    sql = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    assert "create extension" not in sql
    assert "vector(" not in sql


def test_pending_refuses_a_newer_database() -> None:
    migrations = [Migration(1, "a", "")]
    assert pending_migrations(0, migrations) == migrations
    assert pending_migrations(1, migrations) == []
    with pytest.raises(SchemaVersionError, match="version 2"):
        pending_migrations(2, migrations)


# --- SQLite -----------------------------------------------------------------------------


def _sqlite_versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]


async def test_sqlite_fresh_database_is_at_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    backend = SQLiteBackend(path)
    await backend.open()
    await backend.close()

    assert _sqlite_versions(path) == list(range(1, latest_version("sqlite") + 1))
    with sqlite3.connect(path) as conn:
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert {"runs", "messages", "schema_version"} <= tables


async def test_sqlite_reopen_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "again.db"
    for _ in range(2):
        backend = SQLiteBackend(path)
        await backend.open()
        await backend.close()

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate_sqlite(conn) == []
    finally:
        conn.close()
    assert _sqlite_versions(path) == list(range(1, latest_version("sqlite") + 1))


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    backend = SQLiteBackend(path)
    await backend.open()
    await backend.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (999, 'later')")

    newer = SQLiteBackend(path)
    with pytest.raises(SchemaVersionError, match="999"):
        await newer.open()
    await newer.close()


def test_sqlite_applies_only_new_migrations_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "steps.db", isolation_level=None)
    first = [Migration(1, "one", "CREATE TABLE a (x INTEGER);")]
    second = [
        *first,
        Migration(
            2,
            "two",
            "-- comment; with a semicolon\nCREATE TABLE b (y TEXT);\nINSERT INTO b VALUES ('z;');",
        ),
    ]
    try:
        assert migrate_sqlite(conn, first) == [1]
        assert migrate_sqlite(conn, second) == [2]
        assert migrate_sqlite(conn, second) == []
        assert conn.execute("SELECT y FROM b").fetchall() == [("z;",)]
    finally:
        conn.close()


def test_sqlite_failing_migration_rolls_back_entirely(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "broken.db", isolation_level=None)
    good = Migration(1, "good", "CREATE TABLE a (x INTEGER);")
    broken = Migration(2, "broken", "CREATE TABLE b (y INTEGER);\nTHIS IS NOT SQL;")
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate_sqlite(conn, [good, broken])
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == set()  # neither migration 1 nor half of 2 was kept
        assert not conn.in_transaction
    finally:
        conn.close()


async def test_sqlite_run_items_keep_their_runs_across_the_by_save_key(tmp_path: Path) -> None:
    # 0009 re-keys run_items by the save that appended a row: a run stored under 0008 reads
    # back whole after it, and its next saves append to it.
    path = tmp_path / "upgrade.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate_sqlite(conn, load_migrations("sqlite")[:8])
    finally:
        conn.close()
    # Written with the 0008 statements, as the code of that schema wrote it.
    run = RunState(agent="a", query="q", messages=[Message.user("first"), Message.user("second")])
    run.record("model_call", n=1)
    run.version = 1
    head = run.model_dump_json(exclude=HEAD_EXCLUDE)
    with sqlite3.connect(path) as old:
        old.execute(
            "INSERT INTO runs (id, agent, session_id, namespace, status, version, created_at,"
            " updated_at, document) VALUES (?, 'a', ?, ?, 'pending', 1, 'c', 'u', ?)",
            (run.id, run.session_id, run.namespace, head),
        )
        old.executemany(
            "INSERT INTO run_items (run_id, list, seq, body) VALUES (?, ?, ?, ?)",
            [
                (run.id, "messages", 1, Message.user("second").model_dump_json()),
                (run.id, "messages", 0, Message.user("first").model_dump_json()),
                (run.id, "steps", 0, run.steps[0].model_dump_json()),
            ],
        )

    backend = SQLiteBackend(path)
    try:
        stored = await backend.runs.get(run.id)
        assert [m.content for m in stored.messages] == ["first", "second"]
        assert [s.type for s in stored.steps] == ["model_call"]
        stored.messages.append(Message.user("third"))
        await backend.runs.save(stored)
        again = await backend.runs.get(run.id)
        assert [m.content for m in again.messages] == ["first", "second", "third"]
        assert [s.type for s in again.steps] == ["model_call"]
    finally:
        await backend.close()
    assert _sqlite_versions(path) == list(range(1, latest_version("sqlite") + 1))


# --- PostgreSQL -------------------------------------------------------------------------


def _pg_versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]


async def test_postgres_fresh_schema_is_at_latest_version(postgres_schema: str) -> None:
    backend = PostgresBackend(postgres_schema)
    await backend.open()
    await backend.close()

    assert _pg_versions(postgres_schema) == list(range(1, latest_version("postgres") + 1))


async def test_postgres_reopen_applies_nothing(postgres_schema: str) -> None:
    for _ in range(2):
        backend = PostgresBackend(postgres_schema)
        await backend.open()
        await backend.close()

    async with await psycopg.AsyncConnection.connect(postgres_schema) as conn:
        assert await migrate_postgres(conn) == []
    assert _pg_versions(postgres_schema) == list(range(1, latest_version("postgres") + 1))


async def test_postgres_concurrent_openers_migrate_once(postgres_schema: str) -> None:
    backends = [PostgresBackend(postgres_schema) for _ in range(4)]
    await asyncio.gather(*(b.open() for b in backends))
    await asyncio.gather(*(b.close() for b in backends))

    assert _pg_versions(postgres_schema) == list(range(1, latest_version("postgres") + 1))


async def test_postgres_newer_schema_is_refused(postgres_schema: str) -> None:
    backend = PostgresBackend(postgres_schema)
    await backend.open()
    await backend.close()
    with psycopg.connect(postgres_schema) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (999)")

    newer = PostgresBackend(postgres_schema)
    with pytest.raises(SchemaVersionError, match="999"):
        await newer.open()
    await newer.close()


async def test_postgres_failing_migration_rolls_back_entirely(postgres_schema: str) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x integer);")
    broken = Migration(2, "broken", "CREATE TABLE b (y integer); THIS IS NOT SQL;")
    async with await psycopg.AsyncConnection.connect(postgres_schema) as conn:
        with pytest.raises(psycopg.errors.SyntaxError):
            await migrate_postgres(conn, [good, broken])
        cursor = await conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        assert await cursor.fetchone() == (0,)


async def test_postgres_migrations_leave_pgvector_alone(postgres_database: str) -> None:
    backend = PostgresBackend(postgres_database)
    await backend.open()
    await backend.close()
    with psycopg.connect(postgres_database) as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()
        conn.execute("DROP TABLE runs, messages, schema_version")
    assert row == (0,)
