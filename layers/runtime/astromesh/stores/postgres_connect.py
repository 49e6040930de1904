"""How the runtime opens PostgreSQL connections: every connection and pool goes through here.

Two deployment facts live in this one place instead of in each store:

- **IAM authentication** (``ASTROMESH_POSTGRES_IAM_AUTH=true``). In AWS the functions reach
  PostgreSQL through RDS Proxy as a user with no password of their own: each *new* connection
  presents an IAM auth token (a SigV4-presigned URL, computed locally by boto3 from the
  function's credentials; no network call) as its password. Tokens live 15 minutes, so one is
  made per connection, never cached in the DSN: a pool that opens a connection an hour after
  start-up gets a fresh one. boto3 is imported only when this is on, so the light functions
  and the CLI do not pay for it.
- **Certificate checks.** ``sslmode=verify-full`` (or ``verify-ca``) without ``sslrootcert``
  makes libpq look for ``~/.postgresql/root.crt``; psycopg-binary's bundled OpenSSL has no
  usable system store either. When neither the DSN, ``PGSSLROOTCERT`` nor that file names CA
  certificates, the ``certifi`` bundle is used: RDS Proxy's certificates come from ACM and
  chain to Amazon's roots, which it holds.

``ASTROMESH_POSTGRES_PREPARE_THRESHOLD`` (an integer, or ``none``) is psycopg's
``prepare_threshold``. Behind RDS Proxy it is ``none``: psycopg's automatically prepared
statements are followed, after any ROLLBACK or DDL, by ``DEALLOCATE ALL``, which pins the
client session to one database connection for the rest of its life (psycopg issue #1105);
without prepared statements there is nothing to deallocate.

``ASTROMESH_POSTGRES_TIMEOUT`` (seconds, default 5) bounds how long a request waits for a
connection: libpq's ``connect_timeout`` and the pool's wait for a free connection (psycopg's
default is 30 s). While the server is down a request fails with ``StateUnavailable`` (a 503
with ``Retry-After``) within that time instead of holding its caller for half a minute.

Every pooled connection is checked (an empty query, one round trip) when it is taken from the
pool. After the server restarts (a crash, an RDS failover) every idle connection in the pool
is dead, and without the check each would fail one request before the pool noticed; with it,
a dead one is replaced silently. The round trip is the price of losing nothing across a
restart. Lost connections are not retried in the background with psycopg's growing backoff:
each request that finds none connects afresh, so the first one after the server is back
succeeds.

Without these settings a DSN is used exactly as given.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = [
    "IAM_AUTH_ENV",
    "PREPARE_THRESHOLD_ENV",
    "TIMEOUT_ENV",
    "PostgresConnector",
    "TokenSource",
    "rds_token_source",
]

IAM_AUTH_ENV = "ASTROMESH_POSTGRES_IAM_AUTH"
"""``true``: authenticate every new connection with an RDS IAM auth token (RDS Proxy)."""
PREPARE_THRESHOLD_ENV = "ASTROMESH_POSTGRES_PREPARE_THRESHOLD"
"""psycopg's ``prepare_threshold``: an integer, or ``none`` for no server-side prepared
statements (RDS Proxy, PgBouncer in transaction mode)."""

TIMEOUT_ENV = "ASTROMESH_POSTGRES_TIMEOUT"
"""Seconds a request waits to connect, or for a pooled connection, before the store is
reported unavailable."""
DEFAULT_TIMEOUT = 5.0

TokenSource = Callable[[str, int, str], str]
"""``(host, port, user) -> password`` for one new connection."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
_VERIFYING = ("verify-ca", "verify-full")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class PostgresConnector:
    """Opens connections and pools to one database with the deployment's auth and TLS.

    Build it with :meth:`from_env` (what the stores do); the constructor takes the settings
    already checked.

    Attributes:
        conninfo: the DSN, with the certifi CA bundle added where it is needed.
        token_source: makes the password of each new connection (IAM auth), else ``None``.
        host / port / user: what a token is made for (the DSN's own values).
        prepare_threshold: psycopg's ``prepare_threshold``; unset keeps psycopg's default.
        timeout: seconds to connect or to wait for a pooled connection.
    """

    conninfo: str
    token_source: TokenSource | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    prepare_threshold: int | None = _UNSET
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(
        cls,
        dsn: str,
        env: Mapping[str, str] | None = None,
        *,
        token_source: TokenSource | None = None,
    ) -> PostgresConnector:
        """The connector for ``dsn`` under the settings in ``env`` (``os.environ``).

        Args:
            token_source: replaces boto3's token generator when IAM auth is on (tests).

        Raises:
            ConfigurationError: a setting has an invalid value, IAM auth is on and the DSN
                lacks what it needs (one host, a user, no password, a verifying sslmode), or
                psycopg is not installed.
        """
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError as exc:
            raise ConfigurationError(
                f"PostgreSQL needs the 'postgres' extra (pip install 'astromesh[postgres]'): {exc}"
            ) from exc

        env = os.environ if env is None else env
        iam_auth = _flag(env, IAM_AUTH_ENV)
        threshold = _threshold(env)
        timeout = _timeout(env)
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"invalid PostgreSQL DSN: {exc}") from None
        sslmode = str(params.get("sslmode") or env.get("PGSSLMODE") or "")
        conninfo = dsn
        if sslmode in _VERIFYING and not _names_ca_certificates(params, env):
            conninfo = make_conninfo(dsn, sslrootcert=_certifi_bundle(sslmode))
        if not iam_auth:
            return cls(conninfo, prepare_threshold=threshold, timeout=timeout)
        host, port, user = _iam_target(params, sslmode)
        return cls(
            conninfo,
            token_source or rds_token_source(_region(env)),
            host=host,
            port=port,
            user=user,
            prepare_threshold=threshold,
            timeout=timeout,
        )

    @property
    def iam_auth(self) -> bool:
        return self.token_source is not None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``connect`` for one *new* connection: a fresh token each call.

        Given to psycopg_pool as its ``kwargs`` callable (psycopg_pool >= 3.3), so every
        connection the pool opens, at start or much later, asks for its own.
        """
        # libpq takes whole seconds, and treats 1 as 2.
        kwargs: dict[str, Any] = {"connect_timeout": max(2, round(self.timeout))}
        if self.token_source is not None:
            kwargs["password"] = self.token_source(self.host, self.port, self.user)
        if self.prepare_threshold is not _UNSET:
            kwargs["prepare_threshold"] = self.prepare_threshold
        return kwargs

    async def connect(self, **kwargs: Any) -> AsyncConnection[Any]:
        """One connection outside any pool (``kwargs`` as for ``AsyncConnection.connect``)."""
        import psycopg

        return await psycopg.AsyncConnection.connect(
            self.conninfo, **{**self.connect_kwargs(), **kwargs}
        )

    def pool(self, **options: Any) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """An ``AsyncConnectionPool`` (``options`` as for its constructor; pass ``open=False``
        outside a running loop).

        Every checkout is checked first (an empty query): after a server restart the idle
        connections are dead, and RDS Proxy closes client connections idle longer than its
        ``idle_client_timeout`` (typically while a Lambda sandbox is frozen, so the pool
        cannot notice). A dropped connection is replaced (with a fresh token under IAM auth)
        instead of failing the request. Waiting for a connection is bounded by ``timeout``.
        """
        from psycopg_pool import AsyncConnectionPool

        options.setdefault("timeout", self.timeout)
        # psycopg retries a lost connection in the background with an uncapped doubling delay
        # for 5 minutes, and a request waiting meanwhile starts no attempt of its own: after
        # a 10 s outage the next attempt can be 16 s away while every request times out. With
        # no background retry, each request that finds no connection makes one attempt at
        # once, so the first request after the server is back reconnects.
        options.setdefault("reconnect_timeout", 0)
        drain = _DrainOnDeadConnection()
        options.setdefault("check", drain.check)
        pool = AsyncConnectionPool(self.conninfo, kwargs=self.connect_kwargs, **options)
        drain.pool = pool
        return pool


class _DrainOnDeadConnection:
    """The pool's checkout check: one dead connection drains the whole pool.

    A connection that fails its check means the server restarted or failed over, so every
    other idle one is dead too. psycopg would find them one checkout at a time, sleeping a
    growing backoff (1 s, 2 s...) between them inside the same request, which then times
    out; draining replaces them all at once (connections checked out at the time are
    closed when they come back).
    """

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._draining: asyncio.Task[None] | None = None

    async def check(self, conn: AsyncConnection[Any]) -> None:
        from psycopg_pool import AsyncConnectionPool

        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if self.pool is not None and (self._draining is None or self._draining.done()):
                self._draining = asyncio.create_task(self.pool.drain())
            raise


def rds_token_source(region: str) -> TokenSource:
    """IAM auth tokens from boto3's RDS client (``generate_db_auth_token``).

    The client is made on first use (credentials are read then, from the function's role);
    each call presigns locally, so a token per connection costs no request.
    """
    client: list[Any] = []

    def token(host: str, port: int, user: str) -> str:
        if not client:
            import boto3

            client.append(boto3.session.Session().client("rds", region_name=region))
        return str(
            client[0].generate_db_auth_token(
                DBHostname=host, Port=port, DBUsername=user, Region=region
            )
        )

    return token


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {env[name]!r}")


def _threshold(env: Mapping[str, str]) -> int | None:
    raw = env.get(PREPARE_THRESHOLD_ENV, "").strip()
    if not raw:
        return _UNSET
    if raw.lower() == "none":
        return None
    if raw.isdigit():
        return int(raw)
    raise ConfigurationError(
        f"{PREPARE_THRESHOLD_ENV} must be a whole number or 'none', not {raw!r}"
    )


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 300:
        raise ConfigurationError(
            f"{TIMEOUT_ENV} must be a number of seconds between 0 and 300, not {raw!r}"
        )
    return value


def _names_ca_certificates(params: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    """Whether libpq already has CA certificates to verify with (its own lookup order)."""
    if params.get("sslrootcert") or env.get("PGSSLROOTCERT"):
        return True
    try:
        return (Path.home() / ".postgresql" / "root.crt").is_file()
    except (RuntimeError, KeyError):  # no home directory (some Lambda sandboxes)
        return False


def _certifi_bundle(sslmode: str) -> str:
    try:
        import certifi
    except ImportError:
        raise ConfigurationError(
            f"sslmode={sslmode} needs CA certificates: give sslrootcert in the DSN or "
            "install certifi"
        ) from None
    return str(certifi.where())


def _iam_target(params: Mapping[str, Any], sslmode: str) -> tuple[str, int, str]:
    """The host, port and user a token is signed for, from the DSN itself."""
    host, user, port = str(params.get("host") or ""), str(params.get("user") or ""), 5432
    if not host or "," in host or host.startswith("/"):
        raise ConfigurationError(
            f"{IAM_AUTH_ENV}: the DSN must name one TCP host (the token is signed for it)"
        )
    if not user:
        raise ConfigurationError(f"{IAM_AUTH_ENV}: the DSN must name the database user")
    if params.get("password"):
        raise ConfigurationError(
            f"{IAM_AUTH_ENV}: the DSN must not carry a password (each connection's "
            "password is a fresh IAM token)"
        )
    if sslmode not in _VERIFYING:
        raise ConfigurationError(
            f"{IAM_AUTH_ENV}: an IAM token is a bearer credential; the DSN needs "
            f"sslmode=verify-full (or verify-ca), not {sslmode or 'the default (prefer)'}"
        )
    if params.get("port"):
        try:
            port = int(str(params["port"]))
        except ValueError:
            raise ConfigurationError(f"invalid port in the DSN: {params['port']!r}") from None
    return host, port, user


def _region(env: Mapping[str, str]) -> str:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigurationError(
            f"{IAM_AUTH_ENV}: IAM auth tokens are signed for a region; set AWS_REGION"
        )
    return region
