"""The ``/v1`` REST routers, one module per resource."""

from astromesh.channels.rest import (
    agents,
    health,
    lifecycle,
    memory,
    rag,
    runs,
    templates,
    tools,
)

ROUTERS = (
    health.router,
    agents.router,
    lifecycle.router,
    runs.router,
    memory.router,
    tools.router,
    rag.router,
    templates.router,
)

__all__ = ["ROUTERS"]
