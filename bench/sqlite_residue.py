"""What of a deleted or overwritten value stays in SQLite's files (database, -wal, -shm).

Two ways a value the store no longer holds can still be on disk:

- ``clear``: conversation turns holding a marker are written, then the session's history is
  cleared (``DELETE``);
- ``overwrite``: a run document holding a marker is written, then saved again without it
  (what happened when a run was stored before its input guardrail redacted the query).

Each is measured with the pragmas the store used before (WAL, ``synchronous = NORMAL``) and
with what :class:`astromesh.stores.sqlite.SQLiteBackend` applies now (``secure_delete``,
``journal_size_limit = 0``, a ``TRUNCATE`` checkpoint after a clear). It prints, per case and
file, how many copies of the markers the raw bytes hold while the connection is open and
after it is closed; nothing is asserted.

    python bench/sqlite_residue.py [--turns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from astromesh.models.types import Message, Role
from astromesh.runs.state import RunState
from astromesh.stores.base import SessionKey
from astromesh.stores.migrations import migrate_sqlite
from astromesh.stores.sqlite import SQLiteBackend

MARK = "raw-" + uuid.uuid4().hex[:10]


def count(folder: Path) -> dict[str, int]:
    """Copies of the marker per file suffix (``db``, ``wal``, ``shm``)."""
    found = {"db": 0, "wal": 0, "shm": 0}
    for path in folder.iterdir():
        suffix = path.name.rsplit("-", 1)[1] if "-" in path.name else "db"
        found[suffix] = found.get(suffix, 0) + path.read_bytes().count(MARK.encode())
    return found


def old_connection(path: Path) -> sqlite3.Connection:
    """The store's connection as it was: WAL and NORMAL only."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate_sqlite(conn)
    return conn


def turns(n: int) -> list[Message]:
    return [
        Message(role=Role.USER if i % 2 == 0 else Role.ASSISTANT, content=f"{MARK} turn {i}")
        for i in range(n)
    ]


async def new_store(
    folder: Path, work: Callable[[SQLiteBackend], object]
) -> tuple[dict[str, int], dict[str, int]]:
    backend = SQLiteBackend(folder / "state.db")
    await backend.open()
    await work(backend)  # type: ignore[misc]
    open_counts = count(folder)
    await backend.close()
    return open_counts, count(folder)


def old_store(
    folder: Path, work: Callable[[sqlite3.Connection], None]
) -> tuple[dict[str, int], dict[str, int]]:
    conn = old_connection(folder / "state.db")
    work(conn)
    open_counts = count(folder)
    conn.close()
    return open_counts, count(folder)


async def measure(n: int) -> list[tuple[str, str, dict[str, int], dict[str, int]]]:
    rows = []
    key = SessionKey(agent="bench", session_id="s1")

    def old_clear(conn: sqlite3.Connection) -> None:
        for message in turns(n):
            conn.execute(
                "INSERT INTO messages (session_key, role, content, created_at)"
                " VALUES (?, ?, ?, '0')",
                (key.as_string(), message.role.value, message.model_dump_json()),
            )
        conn.execute("DELETE FROM messages WHERE session_key = ?", (key.as_string(),))

    async def new_clear(backend: SQLiteBackend) -> None:
        await backend.history.append(key, turns(n))
        await backend.history.clear(key)

    def old_overwrite(conn: sqlite3.Connection) -> None:
        for _ in range(n // 10 or 1):
            run = RunState(agent="bench", query=f"{MARK} my card is 4111 1111 1111 1111")
            conn.execute(
                "INSERT INTO runs (id, agent, session_id, namespace, status, version,"
                " created_at, updated_at, document) VALUES (?, 'bench', 's1', 'n', 'running',"
                " 1, '0', '0', ?)",
                (run.id, run.model_dump_json()),
            )
            run.query = "my card is [CREDIT_CARD]"
            conn.execute(
                "UPDATE runs SET document = ? WHERE id = ?", (run.model_dump_json(), run.id)
            )

    async def new_overwrite(backend: SQLiteBackend) -> None:
        for _ in range(n // 10 or 1):
            run = await backend.runs.create(
                RunState(agent="bench", query=f"{MARK} my card is 4111 1111 1111 1111")
            )
            run.query = "my card is [CREDIT_CARD]"
            await backend.runs.save(run)

    for case, old, new in (
        ("clear", old_clear, new_clear),
        ("overwrite", old_overwrite, new_overwrite),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append((case, "before", *old_store(Path(tmp), old)))
        with tempfile.TemporaryDirectory() as tmp:
            rows.append((case, "now", *await new_store(Path(tmp), new)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.turns))
    print(f"{'case':<10} {'pragmas':<7} {'open: db/wal/shm':>18} {'closed: db/wal/shm':>20}")
    for case, label, opened, closed in rows:
        o = f"{opened['db']}/{opened['wal']}/{opened['shm']}"
        c = f"{closed['db']}/{closed['wal']}/{closed['shm']}"
        print(f"{case:<10} {label:<7} {o:>18} {c:>20}")


if __name__ == "__main__":
    main()
