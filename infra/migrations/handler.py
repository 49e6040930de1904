"""Custom resource: pgvector, the application role and the runtime's schema, on every deploy.

Invoked by the CDK provider framework on Create and Update (Delete leaves the database
alone). Runs with the runtime layer, so the migrations applied are exactly the ones the
deployed functions expect (``astromesh.stores.migrations``), before any function opens the
database. It connects as the RDS master user, straight to the instance, and:

1. creates the extensions (``CREATE EXTENSION`` needs the master: ``rds_superuser``);
2. creates the application role (``AppSecretArn``'s ``username``, ``astromesh_app``) if it is
   missing, LOGIN, with that secret's password. The password is set only at creation: after
   that the secret's rotation owns it, and a deploy must not put back an older one;
3. gives the role what the runtime needs: CONNECT on the database and USAGE + CREATE on the
   ``public`` schema (the runtime creates tables at run time too: pgvector collections, and
   the ``CREATE TABLE IF NOT EXISTS`` of its migrations runner), and hands it every relation
   the master still owns there (an earlier deploy, when the functions connected as master);
4. applies the runtime's migrations *as that role* (``GRANT <app> TO <master>``, then
   ``SET ROLE``), so the tables belong to the role the functions use through RDS Proxy.

Every step is idempotent. Both secrets are read here, on each event, never through the
cold-start resolver's environment: a warm container must not keep a master password that
rotation has since replaced. The password goes to the server already hashed
(``PQencryptPasswordConn``), so it is never in a statement the server could log.

TLS: ``sslmode=verify-full`` against the RDS certificate authorities shipped beside this
file (``rds-ca-bundle.pem``; certifi does not hold them, unlike the Amazon roots RDS Proxy's
certificates chain to), so the master password only ever goes to the real instance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

PHYSICAL_ID = "astromesh-postgres-schema"
SCHEMA = "public"
MASTER_SSLMODE = "verify-full"
RDS_CA_BUNDLE = Path(__file__).with_name("rds-ca-bundle.pem")

ReadSecret = Callable[[str], Mapping[str, Any]]

_OWNER_CHANGE = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW",
                 "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}  # fmt: skip
"""``ALTER <kind> ... OWNER TO`` per ``pg_class.relkind`` (indexes, TOAST tables and the
sequences of serial / identity columns follow their table)."""


def master_dsn(secret: Mapping[str, Any], database: str) -> str:
    """A libpq DSN from an RDS secret (``username``, ``password``, ``host``, ``port``)."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        "",
        host=str(secret["host"]),
        port=str(secret.get("port", 5432)),
        dbname=database,
        user=str(secret["username"]),
        password=str(secret["password"]),
        sslmode=MASTER_SSLMODE,
        sslrootcert=str(RDS_CA_BUNDLE),
        connect_timeout="30",
    )


async def migrate(
    dsn: str, extensions: Sequence[str], *, app_user: str, app_password: str
) -> list[int]:
    """Steps 1-4 above on the database ``dsn`` (the master's); return the versions applied."""
    from psycopg import sql

    from astromesh.stores.migrations import migrate_postgres
    from astromesh.stores.postgres_connect import PostgresConnector

    async with await PostgresConnector(dsn).connect(autocommit=True) as conn:
        for name in extensions:
            await conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
            )
        await ensure_role(conn, app_user, app_password)
        await grant_runtime_access(conn, app_user)
        await hand_over(conn, app_user)
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(app_user)))
        try:
            return await migrate_postgres(conn)
        finally:
            await conn.execute("RESET ROLE")


async def ensure_role(conn: AsyncConnection[Any], user: str, password: str) -> bool:
    """Create the LOGIN role ``user`` with ``password`` unless it exists; return whether it
    was created. An existing role keeps its password (rotation's) and is made LOGIN."""
    from psycopg import errors, sql

    role = sql.Identifier(user)
    cursor = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
    if await cursor.fetchone() is None:
        cursor = await conn.execute("SHOW password_encryption")
        row = await cursor.fetchone()
        algorithm = str(row[0]) if row else "scram-sha-256"
        verifier = conn.pgconn.encrypt_password(
            password.encode(), user.encode(), algorithm.encode()
        ).decode()
        try:
            await conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(verifier))
            )
            return True
        except errors.DuplicateObject:  # created meanwhile by a concurrent run
            pass
    await conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
    return False


async def grant_runtime_access(conn: AsyncConnection[Any], user: str) -> None:
    """Membership for the master (to act as the role), CONNECT, and USAGE + CREATE on the
    schema. Repeating a GRANT changes nothing."""
    from psycopg import sql

    role = sql.Identifier(user)
    await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
    await conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(conn.info.dbname), role)
    )
    await conn.execute(
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), role)
    )


async def hand_over(conn: AsyncConnection[Any], user: str) -> list[str]:
    """``ALTER ... OWNER TO user`` for every relation of the schema the master (the current
    user) owns, except extension members and the sequences that follow their table; return
    their names."""
    from psycopg import sql

    cursor = await conn.execute(
        "SELECT c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relowner = (SELECT oid FROM pg_roles"
        " WHERE rolname = CURRENT_USER) AND c.relkind = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        " AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))"
        " ORDER BY c.relname",
        (SCHEMA, list(_OWNER_CHANGE)),
    )
    moved: list[str] = []
    for name, kind in await cursor.fetchall():
        await conn.execute(
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(_OWNER_CHANGE[kind]),
                sql.Identifier(SCHEMA, name),
                sql.Identifier(user),
            )
        )
        moved.append(name)
    return moved


def read_secret(arn: str) -> Mapping[str, Any]:
    """The JSON fields of a secret's current version (boto3 ships with Lambda's runtime)."""
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    fields = json.loads(value)
    if not isinstance(fields, dict):
        raise ValueError(f"secret {arn} does not hold a JSON object")
    return fields


def on_event(
    event: dict[str, Any], context: Any, *, secrets: ReadSecret = read_secret
) -> dict[str, Any]:
    """The provider framework's onEvent: answer with the versions applied this time.

    ``ResourceProperties``: ``MasterSecretArn``, ``AppSecretArn``, ``Database``,
    ``Extensions``, and ``Migrations`` (a digest, so a new migration is an Update).
    """
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_ID)}
    props = event["ResourceProperties"]
    master = secrets(props["MasterSecretArn"])
    app = secrets(props["AppSecretArn"])
    applied = asyncio.run(
        migrate(
            master_dsn(master, props["Database"]),
            props.get("Extensions", []),
            app_user=str(app["username"]),
            app_password=str(app["password"]),
        )
    )
    return {
        "PhysicalResourceId": PHYSICAL_ID,
        "Data": {"Applied": ",".join(str(v) for v in applied) or "none"},
    }
