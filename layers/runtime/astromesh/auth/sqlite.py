"""API keys in the SQLite state database (table ``api_keys`` of migration 0003; ``role``
since 0005)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from astromesh.auth.base import ApiKey, KeyStore, Role
from astromesh.errors import ConflictError
from astromesh.runs.state import utcnow
from astromesh.stores._common import sortable_timestamp
from astromesh.stores.sqlite import SQLiteBackend

_COLUMNS = "key_id, tenant, agents, salt, secret_hash, label, created_at, revoked_at, role"


class SQLiteKeyStore(KeyStore):
    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def _insert(self, record: ApiKey) -> None:
        row = (
            record.key_id,
            record.tenant,
            json.dumps(list(record.agents)),
            record.salt,
            record.secret_hash,
            record.label,
            sortable_timestamp(record.created_at),
            record.role.value,
        )

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)", row
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"API key id {record.key_id!r} exists") from None

        await self._backend.call(insert)

    async def _get(self, key_id: str) -> ApiKey | None:
        def select(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            return _record(row) if row else None

        return await self._backend.call(select)

    async def list(self) -> list[ApiKey]:
        def select(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id"
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._backend.call(select)

    async def revoke(self, key_id: str) -> bool:
        now = sortable_timestamp(utcnow())

        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            return cursor.rowcount == 1

        return await self._backend.call(update)

    async def has_active(self) -> bool:
        def select(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1")
            return row.fetchone() is not None

        return await self._backend.call(select)


def _record(row: tuple[str, str, str, str, str, str, str, str | None, str]) -> ApiKey:
    key_id, tenant, agents, salt, secret_hash, label, created, revoked, role = row
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        agents=tuple(json.loads(agents)),
        salt=salt,
        secret_hash=secret_hash,
        label=label,
        created_at=datetime.fromisoformat(created),
        revoked_at=datetime.fromisoformat(revoked) if revoked else None,
        role=Role(role),
    )
