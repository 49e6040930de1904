"""pgvector: the durable vector store (RDS PostgreSQL in AWS), HNSW index, cosine distance.

One table per collection, ``rag_<collection>``, because an HNSW index needs a column of one
fixed dimension and two pipelines may embed with different models. The store creates its
table (and ``CREATE EXTENSION IF NOT EXISTS vector``) itself, on first use, under an advisory
lock, rather than in the numbered state-store migrations:

- the dimension comes from the pipeline document, which a static migration cannot know;
- the run-state migrations must keep working on a PostgreSQL without pgvector (Debian's
  PostgreSQL has none), so only deployments that configure a pgvector store need it;
- the vector store may be another database than the state store.

Creating the extension needs a privileged role the first time; on RDS the master user has it
(``rds_superuser``). Where the application role lacks it, create the extension once by hand:
this code then only checks that it exists (the AWS deployment's migrations step does). Its
connections are opened by ``astromesh.stores.postgres_connect`` like the state store's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.rag.types import Hit, Record, Vector
from astromesh.rag.vectorstores.base import VectorStore, Where
from astromesh.stores.postgres_connect import PostgresConnector

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

_SAFE = re.compile(r"[^a-z0-9_]")

HNSW_M = 16
"""Links per node of the HNSW graph (pgvector's default). In ``bench/rag.py``'s sets, m 24
(with ef_construction 128) gained about 0.01 recall@10 for a build ~40% slower."""

HNSW_EF_CONSTRUCTION = 128
"""Candidates kept while linking a new row; pgvector's default, which this store used, is 64.

Measured with ``bench/rag.py`` (recall@10 against exact search, 200 held-out queries, m 16,
several builds each): on 30k real MiniLM embeddings the ef_construction 64 graph found
0.93-0.96 at ef_search 64, below 0.95 in most builds, and 0.97-0.99 even at ef_search 200:
its misses are whole neighbourhoods of near-paraphrases that the graph links poorly, which
a longer search rarely reaches. With 128: 0.97-0.98 at ef_search 64, 0.97-0.99 at 100. On
100k clustered synthetic vectors 0.96-0.99 became 0.98-0.99 at ef_search 64. The cost is
build time: 100k rows bulk-built in ~22 s instead of ~14 s, and inserts through the store
fell from ~975 to ~730 rows/s (into 25k rows), still several times what the ONNX embedder
produces on the same cores, so ingestion barely changes. An index created before keeps its
settings (``CREATE INDEX IF NOT EXISTS``); ``ALTER INDEX rag_<collection>_hnsw SET
(ef_construction = 128)`` then ``REINDEX INDEX CONCURRENTLY`` of it rebuilds it with these.
"""

HNSW_EF_SEARCH = 100
"""Candidate list size at query time; pgvector's default is 40, this store used 64.

On the :data:`HNSW_EF_CONSTRUCTION` graph, ``bench/rag.py`` measured recall@10 0.97-0.98 at
64 and 0.97-0.99 at 100 on 30k real MiniLM embeddings (p50 ~1.0 and ~1.1 ms per query
through the store), 0.98-0.99 at both on 100k clustered vectors (p50 ~1.4 and ~1.9 ms). The
extra margin costs a fraction of a millisecond, small beside embedding the query (several
ms) and the model call; 200 finds ~0.995 on the real set for about 1.7 times the latency
at 100k rows.
"""


def table_name(collection: str) -> str:
    """``rag_<collection>`` folded to a safe identifier (at most 63 bytes, PostgreSQL's limit);
    a name that had to be changed gets a short hash so two collections cannot collide."""
    folded = _SAFE.sub("_", collection.lower())
    name = f"rag_{folded}"
    if folded != collection or len(name) > 50:
        digest = hashlib.sha256(collection.encode()).hexdigest()[:8]
        name = f"{name[:50]}_{digest}"
    return name


class PgVectorStore(VectorStore):
    """Records in ``rag_<collection>`` with an HNSW (``vector_cosine_ops``) index.

    Args:
        dsn: libpq connection string or URI.
        collection: the logical collection (a pipeline's ``vector_store.collection``).
        dimension: vector size; when ``None`` the table is created at the first write.
        ef_search: HNSW candidate list size at query time (recall vs. speed; see
            :data:`HNSW_EF_SEARCH` for the measurements); raised to ``2 * top_k`` for
            larger queries.
        connector: how connections are opened; by default from ``dsn`` and the
            ``ASTROMESH_POSTGRES_*`` settings of the environment.
    """

    backend = "pgvector"

    def __init__(
        self,
        dsn: str,
        *,
        collection: str = "documents",
        dimension: int | None = None,
        ef_search: int = HNSW_EF_SEARCH,
        max_size: int = 4,
        connector: PostgresConnector | None = None,
    ) -> None:
        self.dsn = dsn
        self.connector = connector or PostgresConnector.from_env(dsn)
        self.collection = collection
        self.table = table_name(collection)
        self.dimension = dimension
        self.ef_search = ef_search
        self.max_size = max_size
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._table_ready = False
        self._iterative_scan = False
        self._lock = asyncio.Lock()

    # -- setup ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._ready(self.dimension)

    async def _ready(self, dimension: int | None) -> AsyncConnectionPool[AsyncConnection[Any]]:
        """The pool, with the extension present and the table created once its size is known."""
        async with self._lock:
            if self._pool is None:
                await self._create_extension()
                self._pool = await self._open_pool()
            if not self._table_ready and dimension is not None:
                await self._create_table(dimension)
            elif not self._table_ready:
                self._table_ready = await self._existing_dimension() is not None
            return self._pool

    async def _create_extension(self) -> None:
        import psycopg

        try:
            async with await self.connector.connect(autocommit=True) as conn:
                cursor = await conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                )
                row = await cursor.fetchone()
                if row is None:
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    cursor = await conn.execute(
                        "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                    )
                    row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"the pgvector store cannot use the 'vector' extension at this database: {exc}"
                " (install pgvector on the server, or run CREATE EXTENSION vector as a "
                "privileged role once)"
            ) from exc
        version = tuple(int(p) for p in re.findall(r"\d+", str(row[0]))[:2]) if row else (0, 0)
        self._iterative_scan = version >= (0, 8)

    async def _open_pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        from pgvector.psycopg import register_vector_async

        async def configure(conn: AsyncConnection[Any]) -> None:
            await register_vector_async(conn)
            await conn.set_autocommit(True)

        pool = self.connector.pool(
            min_size=1,
            max_size=self.max_size,
            open=False,
            configure=configure,
            name=f"astromesh-{self.table}",
        )
        await pool.open(wait=True, timeout=self.connector.timeout)
        return pool

    async def _existing_dimension(self) -> int | None:
        assert self._pool is not None
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT a.atttypmod FROM pg_attribute a"
                " WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding'",
                (self.table,),
            )
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def _create_table(self, dimension: int) -> None:
        from psycopg import sql

        assert self._pool is not None
        table = sql.Identifier(self.table)
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"astromesh:{self.table}",)
            )
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " id text PRIMARY KEY,"
                    " doc_id text NOT NULL,"
                    " content text NOT NULL,"
                    " metadata jsonb NOT NULL DEFAULT '{{}}',"
                    " content_hash text NOT NULL,"
                    " embedding vector({}) NOT NULL,"
                    " seq bigint GENERATED ALWAYS AS IDENTITY,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                ).format(table, sql.Literal(dimension))
            )
            await conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (doc_id)").format(
                    sql.Identifier(f"{self.table}_doc"), table
                )
            )
            await conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
                    " WITH (m = {}, ef_construction = {})"
                ).format(
                    sql.Identifier(f"{self.table}_hnsw"),
                    table,
                    sql.Literal(HNSW_M),
                    sql.Literal(HNSW_EF_CONSTRUCTION),
                )
            )
        found = await self._existing_dimension()
        if found != dimension:
            raise ConfigurationError(
                f"table {self.table} holds {found}-d vectors but the pipeline embeds "
                f"{dimension}-d ones (another model wrote it: use another collection)"
            )
        self.dimension = dimension
        self._table_ready = True

    # -- writes -----------------------------------------------------------------------------

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        from psycopg import sql

        dimension = len(records[0].vector) if records else self.dimension
        pool = await self._ready(dimension)
        if not self._table_ready:
            return
        table = sql.Identifier(self.table)
        vectors = _vector_values(records)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(sql.SQL("DELETE FROM {} WHERE doc_id = %s").format(table), (doc_id,))
            if records:
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        sql.SQL(
                            "INSERT INTO {} (id, doc_id, content, metadata, content_hash,"
                            " embedding) VALUES (%s, %s, %s, %s::jsonb, %s, %s)"
                            " ON CONFLICT (id) DO UPDATE SET doc_id = excluded.doc_id,"
                            " content = excluded.content, metadata = excluded.metadata,"
                            " content_hash = excluded.content_hash,"
                            " embedding = excluded.embedding"
                        ).format(table),
                        [
                            (r.id, r.doc_id, r.content, json.dumps(r.metadata), r.content_hash, v)
                            for r, v in zip(records, vectors, strict=True)
                        ],
                    )

    async def delete_document(self, doc_id: str) -> int:
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready:
            return 0
        async with pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE doc_id = %s").format(sql.Identifier(self.table)),
                (doc_id,),
            )
            return cursor.rowcount

    async def document_hash(self, doc_id: str) -> str | None:
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready:
            return None
        async with pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT content_hash FROM {} WHERE doc_id = %s LIMIT 1").format(
                    sql.Identifier(self.table)
                ),
                (doc_id,),
            )
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    # -- reads ------------------------------------------------------------------------------

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready or top_k <= 0:
            return []
        query_vector = _vector_values([vector])[0]
        filters = sql.SQL("")
        params: list[Any] = [query_vector]
        if where:
            filters = sql.SQL("WHERE metadata @> %s::jsonb")
            params.append(json.dumps(dict(where)))
        params += [query_vector, top_k]
        statement = sql.SQL(
            "SELECT id, content, metadata, 1 - (embedding <=> %s) AS score FROM {} {}"
            " ORDER BY embedding <=> %s LIMIT %s"
        ).format(sql.Identifier(self.table), filters)
        async with pool.connection() as conn, conn.transaction():
            ef = max(self.ef_search, 2 * top_k)
            await conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
            if where and self._iterative_scan:
                # pgvector >= 0.8: keep scanning the graph until enough rows pass the filter.
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor = await conn.execute(statement, params)
            rows = await cursor.fetchall()
        hits = [
            Hit(str(id_), str(content), dict(metadata), float(score), {"vector": float(score)})
            for id_, content, metadata, score in rows
        ]
        hits.sort(key=lambda h: -h.score)  # relaxed_order may return near-sorted rows
        return [h for h in hits if h.score >= threshold]

    async def exact_search(self, vector: Vector, top_k: int) -> list[Hit]:
        """The true top ``top_k`` by a sequential scan (no index): the reference for
        measuring the HNSW index's recall."""
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready:
            return []
        query_vector = _vector_values([vector])[0]
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_indexscan = off")
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT id, content, metadata, 1 - (embedding <=> %s) FROM {}"
                    " ORDER BY embedding <=> %s LIMIT %s"
                ).format(sql.Identifier(self.table)),
                (query_vector, query_vector, top_k),
            )
            rows = await cursor.fetchall()
        return [Hit(str(i), str(c), dict(m), float(s), {"vector": float(s)}) for i, c, m, s in rows]

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready:
            return []
        filters = sql.SQL("WHERE metadata @> %s::jsonb") if where else sql.SQL("")
        params: list[Any] = [json.dumps(dict(where))] if where else []
        async with pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT id, content, metadata FROM {} {} ORDER BY seq LIMIT %s OFFSET %s"
                ).format(sql.Identifier(self.table), filters),
                [*params, limit, offset],
            )
            rows = await cursor.fetchall()
        return [Hit(str(i), str(c), dict(m), 0.0) for i, c, m in rows]

    async def count(self) -> int:
        from psycopg import sql

        pool = await self._ready(self.dimension)
        if not self._table_ready:
            return 0
        async with pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(self.table))
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._table_ready = False


def _vector_values(vectors: Sequence[Record] | Sequence[Vector]) -> list[Any]:
    """numpy float32 arrays (pgvector's binary dumper) when numpy is there, else lists."""
    raw = [v.vector if isinstance(v, Record) else v for v in vectors]
    try:
        import numpy as np
    except ImportError:
        from pgvector import Vector as PgVector

        return [PgVector(list(v)) for v in raw]
    return [np.asarray(v, dtype=np.float32) for v in raw]
