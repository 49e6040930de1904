"""``sql_query`` against a real PostgreSQL (and SQLite files): reads work, every kind of write
is refused by the database itself, one statement per call, time and rows bounded."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.security.grants import Grants
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin
from tests.support.postgres_roles import reader_role

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def sql_tool(dsn: str, grants: Grants | None = None, **config):
    cfg = TypeAdapter(AnyTool).validate_python(
        {"type": "builtin", "name": "sql_query", "config": {"connection_string": dsn, **config}}
    )
    return build_builtin(cfg) if grants is None else build_builtin(cfg, grants=grants)


@pytest.fixture
def shop(postgres_schema: str) -> Iterator[str]:
    """A DSN of a role that may only read the test schema's ``items`` (sql_query refuses a
    privileged role); the schema's owner (the test server's superuser) made it."""
    with psycopg.connect(postgres_schema, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)")
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 50) g"
        )
    with reader_role(postgres_schema) as dsn:
        yield dsn


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO PROGRAM 'touch {canary}'",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT 1",
    ],
)
async def test_a_superuser_connection_is_refused_before_any_statement(
    postgres_schema: str, tmp_path: Path, query: str
) -> None:
    """READ ONLY does not stop a superuser: COPY ... TO PROGRAM runs a shell command on the
    database host. The model writes the SQL, so the role is checked, not the statement."""
    canary = tmp_path / "canary"
    result = await sql_tool(postgres_schema).call({"query": query.format(canary=canary)}, CTX)

    assert not result.ok
    assert "is a superuser" in result.content and "COPY ... TO PROGRAM" in result.content
    assert not canary.exists()


async def test_a_member_of_pg_execute_server_program_is_refused(
    shop: str, postgres_schema: str
) -> None:
    user = psycopg.conninfo.conninfo_to_dict(shop)["user"]
    with psycopg.connect(postgres_schema, autocommit=True) as conn:  # the superuser grants it
        conn.execute(sql.SQL("GRANT pg_execute_server_program TO {}").format(sql.Identifier(user)))

    result = await sql_tool(shop).call({"query": "SELECT 1"}, CTX)

    assert not result.ok and "a member of pg_execute_server_program" in result.content


async def test_reads_with_params(shop: str) -> None:
    result = await sql_tool(shop).call(
        {"query": "SELECT id, name, price FROM items WHERE id <= %s ORDER BY id", "params": [2]},
        CTX,
    )
    assert result.ok, result.content
    assert result.data["columns"] == ["id", "name", "price"]
    assert result.data["rows"] == [
        {"id": 1, "name": "item 1", "price": "1.5"},
        {"id": 2, "name": "item 2", "price": 3},
    ]


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM items",
        "UPDATE items SET name = 'x'",
        "INSERT INTO items VALUES (99, 'x', 1)",
        "DROP TABLE items",
        "CREATE TABLE evil (x int)",
        "WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone",
        "/* read */ delete from items",
        "SELECT 1; COMMIT; DELETE FROM items",
        "COMMIT; DELETE FROM items",
        "TRUNCATE items",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
    ],
)
async def test_writes_are_refused_by_the_database(shop: str, query: str) -> None:
    tool = sql_tool(shop)
    result = await tool.call({"query": query}, CTX)
    after = await tool.call({"query": "DELETE FROM items"}, CTX)
    assert not after.ok and "read-only" in after.content
    assert count(shop) == 50
    with psycopg.connect(shop) as conn:
        assert conn.execute("SELECT to_regclass('evil')").fetchone()[0] is None
    if "set_config" not in query:
        assert not result.ok, result.content


async def test_long_queries_time_out(shop: str) -> None:
    result = await sql_tool(shop, timeout_seconds=0.5).call({"query": "SELECT pg_sleep(10)"}, CTX)
    assert not result.ok and "statement timeout" in result.content


async def test_rows_and_cells_are_bounded(shop: str) -> None:
    result = await sql_tool(shop, max_rows=10).call(
        {"query": "SELECT repeat('x', 100000) AS big FROM generate_series(1, 1000000)"}, CTX
    )
    assert result.ok
    assert result.data["row_count"] == 10 and "10 rows" in result.data["truncated"]
    assert len(result.data["rows"][0]["big"]) < 2_100


def test_read_only_false_and_unknown_schemes_are_refused(shop: str) -> None:
    with pytest.raises(ConfigurationError, match="read_only"):
        sql_tool(shop, read_only=False)
    with pytest.raises(ConfigurationError, match="connection_string"):
        sql_tool("mysql://x/y")


def test_registered_grants_allow_only_listed_dsns(shop: str) -> None:
    grants = Grants(registered=True, sql_dsns=frozenset({"postgresql://other/db"}))
    with pytest.raises(ConfigurationError, match="sql_dsns"):
        sql_tool(shop, grants)
    assert sql_tool(shop, Grants(registered=True, sql_dsns=frozenset({shop}))).name == "sql_query"


async def test_sqlite_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    tool = sql_tool(f"sqlite:///{path}")
    read = await tool.call({"query": "SELECT x FROM t WHERE x > ?", "params": [1]}, CTX)
    assert read.ok and read.data["rows"] == [{"x": 2}]
    for query in ("DELETE FROM t", "SELECT 1; DELETE FROM t", "ATTACH 'other.db' AS o"):
        assert not (await tool.call({"query": query}, CTX)).ok, query
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert not (tmp_path / "other.db").exists()
