"""Channels: how the outside reaches the runtime (REST, SSE, the local WebSocket)."""

from astromesh.channels.app import create_app
from astromesh.channels.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
