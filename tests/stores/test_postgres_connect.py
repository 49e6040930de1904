"""How connections are opened: IAM tokens per new connection, the certifi default, settings.

The token path runs against the real PostgreSQL (its local socket ignores passwords, so what
is checked is the password each connection was opened with, ``conn.info.password``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import certifi
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from astromesh.errors import ConfigurationError
from astromesh.rag.vectorstores.pgvector import PgVectorStore
from astromesh.runs.state import RunState
from astromesh.stores.factory import open_backend
from astromesh.stores.postgres import PostgresBackend
from astromesh.stores.postgres_connect import (
    IAM_AUTH_ENV,
    PREPARE_THRESHOLD_ENV,
    TIMEOUT_ENV,
    PostgresConnector,
)

PROXY_DSN = (
    "postgresql://astromesh_app@astromesh.proxy-abc.eu-west-1.rds.amazonaws.com:5432/astromesh"
    "?sslmode=verify-full"
)
IAM = {IAM_AUTH_ENV: "true", "AWS_REGION": "eu-west-1"}
REPO = Path(__file__).resolve().parents[2]


class Tokens:
    """A token source that records what it was asked for and never repeats a token."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    def __call__(self, host: str, port: int, user: str) -> str:
        self.calls.append((host, port, user))
        return f"token-{len(self.calls)}"

    @property
    def issued(self) -> set[str]:
        return {f"token-{n}" for n in range(1, len(self.calls) + 1)}


def _token_connector(dsn: str, tokens: Tokens, **settings: object) -> PostgresConnector:
    """IAM auth against the local server: built directly, since ``from_env`` (rightly)
    refuses a Unix socket and a non-verifying sslmode for tokens."""
    return PostgresConnector(
        dsn, tokens, host="proxy.example", port=5432, user="astromesh_app", **settings
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory without ``~/.postgresql/root.crt``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# -- without settings: as before ----------------------------------------------------------------


def test_without_settings_the_dsn_is_used_as_it_is(home: Path) -> None:
    dsn = "postgresql://me:pw@db.example:5432/app?sslmode=require"
    connector = PostgresConnector.from_env(dsn, {})
    assert connector.conninfo == dsn
    assert connector.connect_kwargs() == {"connect_timeout": 5}  # the bounded default
    assert not connector.iam_auth


def test_the_light_paths_never_import_boto3() -> None:
    """Neither a plain DSN nor building an IAM connector imports boto3 (the first token does)."""
    code = (
        "import sys\n"
        "from astromesh.stores.postgres_connect import PostgresConnector\n"
        "PostgresConnector.from_env('postgresql://u@h/db', {})\n"
        f"c = PostgresConnector.from_env({PROXY_DSN!r}, {IAM!r})\n"
        "print('boto3' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "False"


# -- IAM auth: a fresh token per new connection --------------------------------------------------


async def test_each_new_pooled_connection_gets_a_fresh_token(postgres_schema: str) -> None:
    tokens = Tokens()
    pool = _token_connector(postgres_schema, tokens).pool(min_size=2, max_size=3, open=False)
    await pool.open(wait=True)
    try:
        assert len(tokens.calls) == 2, "one token per connection the pool opened"
        assert set(tokens.calls) == {("proxy.example", 5432, "astromesh_app")}
        async with pool.connection() as first:
            used = first.info.password
        async with pool.connection() as again:
            assert again.info.password in tokens.issued
        assert len(tokens.calls) == 2, "a reused connection asks for nothing"
        assert used in tokens.issued
        async with pool.connection() as a, pool.connection() as b, pool.connection() as c:
            passwords = {a.info.password, b.info.password, c.info.password}
            await c.execute("SELECT 1")
        assert len(tokens.calls) == 3, "the third connection was new: it got its own token"
        assert passwords == tokens.issued
    finally:
        await pool.close()


async def test_a_connection_the_proxy_dropped_is_replaced_with_a_fresh_token(
    postgres_schema: str,
) -> None:
    """RDS Proxy closes idle client connections while the sandbox is frozen: the pool checks
    each checkout and opens a new connection, with a new token, instead of failing."""
    tokens = Tokens()
    pool = _token_connector(postgres_schema, tokens).pool(min_size=1, max_size=1, open=False)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            pid = conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(postgres_schema, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
            assert conn.info.backend_pid != pid
            assert conn.info.password == "token-2"
    finally:
        await pool.close()


async def test_one_off_connections_get_a_token_too(postgres_schema: str) -> None:
    tokens = Tokens()
    connector = _token_connector(postgres_schema, tokens)
    async with await connector.connect(autocommit=True) as conn:
        assert conn.info.password == "token-1"
        assert conn.autocommit
    async with await connector.connect() as conn:
        assert conn.info.password == "token-2"


async def test_the_state_backend_opens_through_the_connector(postgres_schema: str) -> None:
    tokens = Tokens()
    connector = _token_connector(postgres_schema, tokens, prepare_threshold=None)
    backend = PostgresBackend(postgres_schema, max_size=2, connector=connector)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        assert (await backend.runs.get(run.id)).id == run.id
        async with backend.pool.connection() as conn:
            assert conn.info.password in tokens.issued
            assert conn.prepare_threshold is None
    finally:
        await backend.close()
    assert tokens.calls


async def test_the_pgvector_store_opens_through_the_connector(postgres_schema: str) -> None:
    tokens = Tokens()
    store = PgVectorStore(
        postgres_schema, collection="iam", dimension=3, connector=_token_connector(
            postgres_schema, tokens
        ),
    )  # fmt: skip
    try:
        await store.open()
        assert len(tokens.calls) >= 2, "the extension check and the pool's connection"
        assert await store.count() == 0
    finally:
        await store.close()


def test_prepare_threshold_setting(home: Path) -> None:
    assert PostgresConnector.from_env(
        "postgresql://u@h/db", {PREPARE_THRESHOLD_ENV: "none"}
    ).connect_kwargs() == {"connect_timeout": 5, "prepare_threshold": None}
    assert PostgresConnector.from_env(
        "postgresql://u@h/db", {PREPARE_THRESHOLD_ENV: "12"}
    ).connect_kwargs() == {"connect_timeout": 5, "prepare_threshold": 12}


def test_timeout_setting_bounds_connecting_and_waiting_for_the_pool(home: Path) -> None:
    connector = PostgresConnector.from_env("postgresql://u@h/db", {TIMEOUT_ENV: "2.5"})
    assert connector.connect_kwargs() == {"connect_timeout": 2}
    pool = connector.pool(open=False)
    assert pool.timeout == 2.5
    assert pool.reconnect_timeout == 0  # each request reconnects, no background backoff
    # libpq counts whole seconds and treats 1 as 2.
    assert PostgresConnector.from_env(
        "postgresql://u@h/db", {TIMEOUT_ENV: "0.5"}
    ).connect_kwargs() == {"connect_timeout": 2}
    for bad in ("0", "-1", "soon", "301"):
        with pytest.raises(ConfigurationError, match=TIMEOUT_ENV):
            PostgresConnector.from_env("postgresql://u@h/db", {TIMEOUT_ENV: bad})


def test_a_real_token_is_a_presigned_connect_url(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3's generate_db_auth_token: a local SigV4 presign (fake credentials, no network)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    connector = PostgresConnector.from_env(PROXY_DSN, IAM)
    assert conninfo_to_dict(connector.conninfo)["sslrootcert"] == certifi.where()
    password = connector.connect_kwargs()["password"]
    host = "astromesh.proxy-abc.eu-west-1.rds.amazonaws.com"
    assert password.startswith(f"{host}:5432/?")
    assert "Action=connect" in password and "DBUser=astromesh_app" in password
    assert "X-Amz-Expires=900" in password and "X-Amz-Signature=" in password
    assert "eu-west-1%2Frds-db%2Faws4_request" in password
    assert connector.connect_kwargs()["password"].startswith(f"{host}:5432/?")


# -- CA certificates ------------------------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
def test_verifying_without_a_root_certificate_uses_certifi(home: Path, sslmode: str) -> None:
    connector = PostgresConnector.from_env(f"postgresql://u@db.example/app?sslmode={sslmode}", {})
    params = conninfo_to_dict(connector.conninfo)
    assert params["sslrootcert"] == certifi.where()
    assert params["sslmode"] == sslmode and params["host"] == "db.example"
    from_env = PostgresConnector.from_env("postgresql://u@db.example/app", {"PGSSLMODE": sslmode})
    assert conninfo_to_dict(from_env.conninfo)["sslrootcert"] == certifi.where()


def test_a_named_root_certificate_is_kept(home: Path) -> None:
    own = "postgresql://u@db.example/app?sslmode=verify-full&sslrootcert=/etc/rds-ca.pem"
    assert PostgresConnector.from_env(own, {}).conninfo == own
    dsn = "postgresql://u@db.example/app?sslmode=verify-full"
    assert PostgresConnector.from_env(dsn, {"PGSSLROOTCERT": "/etc/ca.pem"}).conninfo == dsn
    (home / ".postgresql").mkdir()
    (home / ".postgresql" / "root.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert PostgresConnector.from_env(dsn, {}).conninfo == dsn, "libpq's own default file"
    require = "postgresql://u@db.example/app?sslmode=require"
    assert PostgresConnector.from_env(require, {}).conninfo == require


# -- invalid settings: clear errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "env", "message"),
    [
        (PROXY_DSN, {IAM_AUTH_ENV: "maybe"}, f"{IAM_AUTH_ENV} must be true or false"),
        (PROXY_DSN, {PREPARE_THRESHOLD_ENV: "-1"}, f"{PREPARE_THRESHOLD_ENV} must be a whole"),
        (PROXY_DSN, {PREPARE_THRESHOLD_ENV: "often"}, f"{PREPARE_THRESHOLD_ENV} must be a whole"),
        (PROXY_DSN, {IAM_AUTH_ENV: "true"}, "set AWS_REGION"),
        ("postgresql://db.example/app?sslmode=verify-full", IAM, "must name the database user"),
        ("postgresql://u:pw@db.example/app?sslmode=verify-full", IAM, "must not carry a password"),
        ("postgresql://u@db.example/app?sslmode=require", IAM, "sslmode=verify-full"),
        ("postgresql://u@db.example/app", IAM, "sslmode=verify-full"),
        ("postgresql://u@/app?host=/tmp&sslmode=verify-full", IAM, "one TCP host"),
        ("postgresql://u@a,b/app?sslmode=verify-full", IAM, "one TCP host"),
        ("host=db.example nonsense", {}, "invalid PostgreSQL DSN"),
    ],
)
def test_invalid_settings_are_reported(
    home: Path, dsn: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PostgresConnector.from_env(dsn, env)


def test_the_stores_read_the_settings_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IAM_AUTH_ENV, "maybe")
    with pytest.raises(ConfigurationError, match=IAM_AUTH_ENV):
        open_backend("postgres", postgres_dsn=PROXY_DSN)
    with pytest.raises(ConfigurationError, match=IAM_AUTH_ENV):
        PgVectorStore(PROXY_DSN)
    for name, value in IAM.items():
        monkeypatch.setenv(name, value)
    backend = PostgresBackend(PROXY_DSN)
    assert backend.connector.iam_auth
    assert backend.connector.user == "astromesh_app"
