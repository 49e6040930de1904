"""State stores: runs and conversation history behind small interfaces.

``open_backend`` picks one by name. Only the stdlib-backed ones are imported here; the Redis
and PostgreSQL modules (``astromesh.stores.redis``, ``astromesh.stores.postgres``) need their
extras and load on demand.
"""

from astromesh.stores.base import HistoryStore, RunStore, SessionKey, StateBackend
from astromesh.stores.factory import open_backend
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.migrations import SchemaVersionError
from astromesh.stores.sqlite import SQLiteBackend

__all__ = [
    "HistoryStore",
    "MemoryBackend",
    "RunStore",
    "SQLiteBackend",
    "SchemaVersionError",
    "SessionKey",
    "StateBackend",
    "open_backend",
]
