"""API keys in PostgreSQL (table ``api_keys`` of migration 0003; ``role`` since 0005)."""

from __future__ import annotations

import json
from typing import Any

from astromesh.auth.base import ApiKey, KeyStore, Role
from astromesh.errors import ConflictError
from astromesh.stores._common import as_utc
from astromesh.stores.postgres import PostgresBackend

_COLUMNS = "key_id, tenant, agents::text, salt, secret_hash, label, created_at, revoked_at, role"


class PostgresKeyStore(KeyStore):
    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def _insert(self, record: ApiKey) -> None:
        _, count = await self._backend.execute_count(
            "INSERT INTO api_keys"
            " (key_id, tenant, agents, salt, secret_hash, label, created_at, role)"
            " VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s, %s) ON CONFLICT (key_id) DO NOTHING",
            (
                record.key_id,
                record.tenant,
                json.dumps(list(record.agents)),
                record.salt,
                record.secret_hash,
                record.label,
                as_utc(record.created_at),
                record.role.value,
            ),
        )
        if count != 1:
            raise ConflictError(f"API key id {record.key_id!r} exists")

    async def _get(self, key_id: str) -> ApiKey | None:
        rows = await self._backend.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,)
        )
        return _record(rows[0]) if rows else None

    async def list(self) -> list[ApiKey]:
        rows = await self._backend.execute(
            f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id"
        )
        return [_record(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        _, count = await self._backend.execute_count(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
            (key_id,),
        )
        return count == 1

    async def has_active(self) -> bool:
        rows = await self._backend.execute(
            "SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"
        )
        return bool(rows)


def _record(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, agents, salt, secret_hash, label, created, revoked, role = row
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        agents=tuple(json.loads(agents)),
        salt=salt,
        secret_hash=secret_hash,
        label=label,
        created_at=created,
        revoked_at=revoked,
        role=Role(role),
    )
