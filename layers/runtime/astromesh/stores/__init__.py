"""State stores: runs and conversation history behind small interfaces."""

from astromesh.stores.base import HistoryStore, RunStore, SessionKey, StateBackend

__all__ = ["HistoryStore", "RunStore", "SessionKey", "StateBackend"]
