"""The migration custom resource's handler against a real PostgreSQL with pgvector.

The RDS situation as far as a local server allows: a master role that is not a superuser but
has CREATEROLE and owns the database (as RDS's master does); ``vector`` is created beforehand
by the superuser, because locally only a superuser may create it (on RDS, ``rds_superuser``
may), so the handler's ``CREATE EXTENSION IF NOT EXISTS`` finds it there. The secrets come
from moto's Secrets Manager, read by the handler's own boto3 reader.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
from infra.migrations import handler
from moto import mock_aws
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from astromesh.rag.vectorstores.pgvector import PgVectorStore
from astromesh.runs.state import RunState
from astromesh.stores.migrations import latest_version, migrate_postgres
from astromesh.stores.postgres import PostgresBackend

pytestmark = pytest.mark.infra

ALL_VERSIONS = ",".join(str(v) for v in range(1, latest_version("postgres") + 1))


@dataclass
class Rds:
    """One RDS-like database: its master, the application role's name, the secrets' ARNs."""

    admin: str  # superuser DSN of the server
    database: str
    master: str
    app: str
    master_arn: str
    app_arn: str
    host: str

    def dsn(self, user: str, **extra: str) -> str:
        return make_conninfo("", host=self.host, dbname=self.database, user=user, **extra)

    def event(self, kind: str = "Create") -> dict[str, Any]:
        return {
            "RequestType": kind,
            "ResourceProperties": {
                "MasterSecretArn": self.master_arn,
                "AppSecretArn": self.app_arn,
                "Database": self.database,
                "Extensions": ["vector"],
                "Migrations": "digest",
            },
        }

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """As the superuser, in this database."""
        with psycopg.connect(make_conninfo(self.admin, dbname=self.database)) as conn:
            return conn.execute(statement, params).fetchall()

    def owners(self) -> dict[str, str]:
        rows = self.query(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'i')"
            " AND c.relname NOT LIKE 'pg\\_%%'"
        )
        return dict(rows)

    def verifier(self) -> str:
        [(value,)] = self.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (self.app,))
        return str(value)


@pytest.fixture
def rds(postgres_dsn: str) -> Iterator[Rds]:
    suffix = uuid.uuid4().hex[:10]
    master, app, database = f"master_{suffix}", f"astromesh_app_{suffix}", f"rds_{suffix}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD 'master-pw'").format(
                sql.Identifier(master)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(master)
            )
        )
    with psycopg.connect(make_conninfo(postgres_dsn, dbname=database), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    host = str(conninfo_to_dict(postgres_dsn).get("host") or "localhost")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")

        def secret(name: str, fields: Mapping[str, Any]) -> str:
            return client.create_secret(Name=name, SecretString=json.dumps(fields))["ARN"]

        common = {"host": host, "port": 5432, "engine": "postgres"}
        yield Rds(
            admin=postgres_dsn,
            database=database,
            master=master,
            app=app,
            master_arn=secret(f"{suffix}/postgres", {"username": master,
                                                       "password": "master-pw", **common}),
            app_arn=secret(f"{suffix}/postgres-app", {"username": app,
                                                        "password": "app-pw-1", **common}),
            host=host,
        )  # fmt: skip
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in (app, master):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a ``SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`` verifier is ``password``'s."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    expected = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(expected, stored_key)


# -- a first deploy ---------------------------------------------------------------------------


def test_create_makes_the_role_and_migrates_as_it(rds: Rds) -> None:
    first = handler.on_event(rds.event("Create"), None)
    assert first == {"PhysicalResourceId": handler.PHYSICAL_ID, "Data": {"Applied": ALL_VERSIONS}}
    [(login, superuser, createrole)] = rds.query(
        "SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
        (rds.app,),
    )
    assert login and not superuser and not createrole
    verifier = rds.verifier()
    assert verifier.startswith("SCRAM-SHA-256$"), "hashed before it was sent"
    assert _scram_matches(verifier, "app-pw-1")
    owners = rds.owners()
    assert {"runs", "messages", "schema_version", "agents", "api_keys"} <= set(owners)
    assert set(owners.values()) == {rds.app}, owners
    assert rds.query("SELECT 1 FROM pg_extension WHERE extname = 'vector'")


async def test_the_role_runs_the_runtime_and_creates_collections(rds: Rds) -> None:
    await asyncio.to_thread(handler.on_event, rds.event("Create"), None)
    backend = PostgresBackend(rds.dsn(rds.app), max_size=2)
    try:
        run = await backend.runs.create(RunState(agent="a", query="q"))
        assert (await backend.runs.get(run.id)).id == run.id
    finally:
        await backend.close()
    store = PgVectorStore(rds.dsn(rds.app), collection="docs", dimension=3)
    try:
        await store.open()
        assert await store.count() == 0
    finally:
        await store.close()
    assert rds.owners()["rag_docs"] == rds.app
    with psycopg.connect(rds.dsn(rds.app)) as conn:
        (version,) = conn.execute("SELECT MAX(version) FROM schema_version").fetchone() or (0,)
    assert version == latest_version("postgres")


# -- later deploys ------------------------------------------------------------------------------


def test_updates_are_idempotent_and_never_reset_the_password(rds: Rds) -> None:
    handler.on_event(rds.event("Create"), None)
    verifier, owners = rds.verifier(), rds.owners()
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    fields = json.loads(client.get_secret_value(SecretId=rds.app_arn)["SecretString"])
    client.put_secret_value(
        SecretId=rds.app_arn, SecretString=json.dumps({**fields, "password": "rotated-pw"})
    )  # as rotation would: the database already has it, the deploy must not undo it
    again = handler.on_event(rds.event("Update"), None)
    assert again["Data"]["Applied"] == "none"
    assert rds.verifier() == verifier, "the role's password is rotation's, not the deploy's"
    assert rds.owners() == owners


def test_an_earlier_deploys_tables_are_handed_to_the_role(rds: Rds) -> None:
    """Before this change the functions connected as master: its tables, a pgvector
    collection (identity sequence included) among them, must change hands."""

    async def as_master() -> None:
        async with await psycopg.AsyncConnection.connect(rds.dsn(rds.master)) as conn:
            await migrate_postgres(conn)
            await conn.execute(
                "CREATE TABLE rag_old (id text PRIMARY KEY, embedding vector(3),"
                " seq bigint GENERATED ALWAYS AS IDENTITY)"
            )
            await conn.commit()

    asyncio.run(as_master())
    assert set(rds.owners().values()) == {rds.master}
    answer = handler.on_event(rds.event("Update"), None)
    assert answer["Data"]["Applied"] == "none"
    owners = rds.owners()
    assert set(owners.values()) == {rds.app}, owners
    assert "rag_old_seq_seq" in owners, "the identity sequence followed its table"
    with psycopg.connect(rds.dsn(rds.app)) as conn:
        conn.execute("INSERT INTO rag_old (id, embedding) VALUES ('a', '[1,2,3]')")
        conn.execute("ALTER TABLE rag_old ADD COLUMN note text")


def test_the_master_secret_is_read_on_every_event(rds: Rds) -> None:
    read: list[str] = []

    def spy(arn: str) -> Mapping[str, Any]:
        read.append(arn)
        return handler.read_secret(arn)

    handler.on_event(rds.event("Create"), None, secrets=spy)
    handler.on_event(rds.event("Update"), None, secrets=spy)
    assert read.count(rds.master_arn) == 2 and read.count(rds.app_arn) == 2


def test_delete_leaves_the_database_alone() -> None:
    def no_secrets(arn: str) -> Mapping[str, Any]:
        raise AssertionError("Delete reads nothing")

    answer = handler.on_event(
        {"RequestType": "Delete", "PhysicalResourceId": "x"}, None, secrets=no_secrets
    )
    assert answer == {"PhysicalResourceId": "x"}


def test_the_master_dsn_comes_from_the_secret() -> None:
    dsn = handler.master_dsn(
        {"username": "astromesh", "password": "p@ss word", "host": "db.internal", "port": 5432},
        "astromesh",
    )
    params = conninfo_to_dict(dsn)
    assert params["user"] == "astromesh" and params["password"] == "p@ss word"
    assert params["host"] == "db.internal" and params["dbname"] == "astromesh"
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(handler.RDS_CA_BUNDLE)


def test_the_rds_ca_bundle_loads_and_holds_each_regions_roots() -> None:
    """What verify-full checks the instance against: every region's RDS roots, loadable."""
    context = ssl.create_default_context(cafile=str(handler.RDS_CA_BUNDLE))
    names = {dict(part[0] for part in cert["subject"])["commonName"]
             for cert in context.get_ca_certs()}  # fmt: skip
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert f"Amazon RDS {region} Root CA RSA2048 G1" in names
