"""The ``/v1`` REST routers, one module per resource."""

from astromesh.channels.rest import agents, health, lifecycle, memory, rag, runs, tools

ROUTERS = (
    health.router,
    agents.router,
    lifecycle.router,
    runs.router,
    memory.router,
    tools.router,
    rag.router,
)

__all__ = ["ROUTERS"]
