"""Workflow runs in Redis: a JSON string per run, a set per status, CAS in Lua.

Keys never expire (unlike agent runs' hot copies): a run may wait a year for a person.
"""

from __future__ import annotations

import json
from typing import Any

from astromesh.stores.redis import RedisBackend
from astromesh.workflows.store.base import RunRow, WorkflowRunStore

# KEYS: run key, status set of the new status, status set prefix ("...:status:")
# ARGV: expected version ("" to insert), new version, status, document, run id, tenant
_WRITE_LUA = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
else
  if not current then return 0 end
  local stored = cjson.decode(current)
  if tostring(stored['version']) ~= ARGV[1] then return 0 end
  redis.call('SREM', KEYS[3] .. stored['status'], ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return 1
"""


class RedisWorkflowRunStore(WorkflowRunStore):
    def __init__(self, backend: RedisBackend) -> None:
        self._backend = backend
        self._write = backend.client.register_script(_WRITE_LUA)

    def _key(self, *parts: str) -> str:
        return self._backend.key("wf", *parts)

    async def _put(self, expected: str, row: RunRow) -> bool:
        args: list[Any] = [expected, row.version, row.status, row.document, row.id, row.tenant]
        keys = [self._key("run", row.id), self._key("status", row.status), self._key("status", "")]
        return bool(await self._write(keys=keys, args=args))

    async def _insert(self, row: RunRow) -> bool:
        return await self._put("", row)

    async def _select(self, run_id: str) -> str | None:
        return await self._backend.client.get(self._key("run", run_id))

    async def _swap(self, expected_version: int, row: RunRow) -> bool:
        return await self._put(str(expected_version), row)

    async def _scan(self, tenant: str | None, statuses: list[str] | None, limit: int) -> list[str]:
        client = self._backend.client
        if statuses is None:
            ids: set[str] = set()
            async for key in client.scan_iter(match=self._key("run", "*")):
                ids.add(key.rsplit(":", 1)[-1])
        else:
            ids = set()
            for status in statuses:
                ids |= set(await client.smembers(self._key("status", status)))
        documents = []
        for run_id in ids:
            document = await client.get(self._key("run", run_id))
            if document is not None and (
                tenant is None or json.loads(document)["tenant"] == tenant
            ):
                documents.append(document)
        return documents

    async def put_workflow(self, tenant: str, name: str, document: str) -> None:
        await self._backend.client.hset(self._key("workflows", tenant), name, document)

    async def get_workflow(self, tenant: str, name: str) -> str | None:
        return await self._backend.client.hget(self._key("workflows", tenant), name)

    async def list_workflows(self, tenant: str) -> dict[str, str]:
        found = await self._backend.client.hgetall(self._key("workflows", tenant))
        return dict(sorted(found.items()))
