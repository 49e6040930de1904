"""In-memory key store, for tests."""

from __future__ import annotations

import dataclasses

from astromesh.auth.base import ApiKey, KeyStore
from astromesh.errors import ConflictError
from astromesh.runs.state import utcnow


class MemoryKeyStore(KeyStore):
    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    async def _insert(self, record: ApiKey) -> None:
        if record.key_id in self._keys:
            raise ConflictError(f"API key id {record.key_id!r} exists")
        self._keys[record.key_id] = record

    async def _get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str) -> bool:
        record = self._keys.get(key_id)
        if record is None or not record.active:
            return False
        self._keys[key_id] = dataclasses.replace(record, revoked_at=utcnow())
        return True

    async def has_active(self) -> bool:
        return any(k.active for k in self._keys.values())
