"""Channels: how the outside reaches the runtime (REST, SSE, the local WebSocket).

``create_app`` and ``ServerSettings`` are imported on first use: the step loop's Lambda
workers import :mod:`astromesh.channels.control_plane` from this package and must not pay for
FastAPI at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.channels.app import create_app
    from astromesh.channels.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from astromesh.channels.app import create_app

        return create_app
    if name == "ServerSettings":
        from astromesh.channels.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
