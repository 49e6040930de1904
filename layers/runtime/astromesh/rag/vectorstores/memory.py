"""Exact (brute-force) search in process memory, and the same over a SQLite file.

Exact search over a few thousand vectors takes well under a millisecond with numpy, so this
is the right store for semantic memory (a handful of facts per agent), for tests, and as the
exact baseline the benchmarks compare approximate indexes against. numpy is used when
installed and pure Python otherwise, so the light install can still recall memories.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astromesh.rag.types import Hit, Record, Vector
from astromesh.rag.vectorstores.base import VectorStore, Where, matches
from astromesh.stores.sqlite import apply_erasure_pragmas


def exact_top_k(
    query: Vector, records: Sequence[Record], top_k: int, threshold: float
) -> list[tuple[Record, float]]:
    """The ``top_k`` records by cosine similarity to ``query`` (vectors are unit length)."""
    if not records or top_k <= 0:
        return []
    try:
        import numpy as np
    except ImportError:
        scored = [
            (r, math.fsum(a * b for a, b in zip(query, r.vector, strict=True))) for r in records
        ]
    else:
        matrix = np.asarray([r.vector for r in records], dtype=np.float32)
        sims = matrix @ np.asarray(query, dtype=np.float32)
        scored = [(records[i], float(sims[i])) for i in range(len(records))]
    scored = [(r, s) for r, s in scored if s >= threshold]
    scored.sort(key=lambda pair: -pair[1])
    return scored[:top_k]


def _hit(record: Record, score: float) -> Hit:
    return Hit(record.id, record.content, dict(record.metadata), score, {"vector": score})


class InMemoryVectorStore(VectorStore):
    """Records in a dict, searched exactly. Nothing survives the process."""

    backend = "memory"

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        await self.delete_document(doc_id)
        for record in records:
            self._records[record.id] = record

    async def delete_document(self, doc_id: str) -> int:
        doomed = [key for key, r in self._records.items() if r.doc_id == doc_id]
        for key in doomed:
            del self._records[key]
        return len(doomed)

    async def document_hash(self, doc_id: str) -> str | None:
        return next((r.content_hash for r in self._records.values() if r.doc_id == doc_id), None)

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        candidates = [r for r in self._records.values() if matches(r.metadata, where)]
        return [_hit(r, s) for r, s in exact_top_k(vector, candidates, top_k, threshold)]

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        found = [r for r in self._records.values() if matches(r.metadata, where)]
        return [_hit(r, 0.0) for r in found[offset : offset + limit]]

    async def count(self) -> int:
        return len(self._records)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    collection   TEXT NOT NULL,
    id           TEXT NOT NULL,
    doc_id       TEXT NOT NULL,
    content      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector       BLOB NOT NULL,
    UNIQUE (collection, id)
);
CREATE INDEX IF NOT EXISTS vectors_doc ON vectors (collection, doc_id);
"""


class SQLiteVectorStore(VectorStore):
    """Records in a SQLite file (vectors as float32 blobs), searched exactly.

    The embedded default for semantic memory: durable across restarts with nothing to run.
    Calls go to one worker thread that owns the connection, like the state store's SQLite.

    Its ``vectors`` table is created here on first use (``CREATE ... IF NOT EXISTS``), not by
    the state store's numbered migrations like the episodic log and the summaries: this store
    opens its own file (semantic memory's ``.astromesh/semantic.db`` by default, or any path a
    pipeline names), which the state backend never opens and so never migrates. Putting the
    table in a migration would leave it missing in exactly the files this store uses.
    """

    backend = "sqlite"

    def __init__(self, path: str | Path, *, collection: str = "default") -> None:
        self.path = path
        self.collection = collection
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if str(self.path) != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            apply_erasure_pragmas(conn)  # semantic memory holds conversation turns
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _call(self, fn: Any, *args: Any) -> Any:
        def run() -> Any:
            with self._lock:
                return fn(self._connection(), *args)

        return await asyncio.to_thread(run)

    async def open(self) -> None:
        await self._call(lambda _conn: None)

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM vectors WHERE collection = ? AND doc_id = ?",
                    (self.collection, doc_id),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (collection, id, doc_id, content, metadata,"
                    " content_hash, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            self.collection,
                            r.id,
                            r.doc_id,
                            r.content,
                            json.dumps(r.metadata),
                            r.content_hash,
                            array("f", r.vector).tobytes(),
                        )
                        for r in records
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._call(write)

    async def delete_document(self, doc_id: str) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM vectors WHERE collection = ? AND doc_id = ?", (self.collection, doc_id)
            )
            return cursor.rowcount

        return int(await self._call(delete))

    async def document_hash(self, doc_id: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT content_hash FROM vectors WHERE collection = ? AND doc_id = ? LIMIT 1",
                (self.collection, doc_id),
            ).fetchone()
            return None if row is None else str(row[0])

        result: str | None = await self._call(select)
        return result

    def _load(self, conn: sqlite3.Connection) -> list[Record]:
        rows = conn.execute(
            "SELECT id, doc_id, content, metadata, content_hash, vector FROM vectors"
            " WHERE collection = ? ORDER BY seq",
            (self.collection,),
        ).fetchall()
        records = []
        for id_, doc_id, content, metadata, content_hash, blob in rows:
            vector = array("f")
            vector.frombytes(blob)
            records.append(
                Record(id_, doc_id, content, vector.tolist(), json.loads(metadata), content_hash)
            )
        return records

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        records = [r for r in await self._call(self._load) if matches(r.metadata, where)]
        return [_hit(r, s) for r, s in exact_top_k(vector, records, top_k, threshold)]

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        records = [r for r in await self._call(self._load) if matches(r.metadata, where)]
        return [_hit(r, 0.0) for r in records[offset : offset + limit]]

    async def count(self) -> int:
        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM vectors WHERE collection = ?", (self.collection,)
            ).fetchone()
            return int(row[0])

        return int(await self._call(count))

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(shut)
