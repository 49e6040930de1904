"""What a SQLite store deletes leaves its files: ``secure_delete`` zeroes the freed space in
the database pages, and clearing a history checkpoints the WAL and truncates it, so a cleared
conversation is in none of the database, ``-wal`` or ``-shm`` files while the store is open
(``bench/sqlite_residue.py`` measures the same against the old pragmas)."""

from __future__ import annotations

import uuid
from pathlib import Path

from astromesh.models.types import Message
from astromesh.stores.base import SessionKey
from astromesh.stores.sqlite import SQLiteBackend


def copies(folder: Path, marker: str) -> dict[str, int]:
    return {p.name: p.read_bytes().count(marker.encode()) for p in folder.iterdir()}


async def test_a_cleared_history_leaves_no_copy_in_any_file(tmp_path: Path):
    marker = f"secret-{uuid.uuid4().hex}"
    backend = SQLiteBackend(tmp_path / "state.db")
    key, other = SessionKey("a", "s1"), SessionKey("a", "s2")
    try:
        await backend.history.append(key, [Message.user(f"{marker} {i}") for i in range(300)])
        await backend.history.append(other, [Message.user("kept")])
        assert sum(copies(tmp_path, marker).values()) >= 300  # written (to the WAL at least)

        assert await backend.history.clear(key) == 300

        found = copies(tmp_path, marker)
        assert set(found) >= {"state.db", "state.db-wal", "state.db-shm"}
        assert found == dict.fromkeys(found, 0), found
        assert [m.content for m in await backend.history.read(other)] == ["kept"]
    finally:
        await backend.close()


async def test_the_erasure_pragmas_are_on(tmp_path: Path):
    backend = SQLiteBackend(tmp_path / "state.db")
    try:
        settings = await backend.call(
            lambda conn: (
                conn.execute("PRAGMA secure_delete").fetchone()[0],
                conn.execute("PRAGMA journal_size_limit").fetchone()[0],
                conn.execute("PRAGMA journal_mode").fetchone()[0],
            )
        )
    finally:
        await backend.close()
    assert settings == (1, 0, "wal")
