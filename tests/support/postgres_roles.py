"""A PostgreSQL role that may only read, for tests of ``sql_query`` (which refuses a
superuser connection: ``COPY ... TO PROGRAM`` runs even in a read-only transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


@contextmanager
def reader_role(owner_dsn: str) -> Iterator[str]:
    """A DSN of a new role that may ``SELECT`` the tables of ``owner_dsn``'s current schema
    (those there now); dropped on exit. ``owner_dsn`` must be able to create roles."""
    role = f"reader_{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        schema = sql.Identifier(conn.execute("SELECT current_schema()").fetchone()[0])
        ident = sql.Identifier(role)
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password))
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, ident))
    try:
        yield make_conninfo(owner_dsn, user=role, password=password)
    finally:
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))
