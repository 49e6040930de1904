"""The ``/v1`` REST routers, one module per resource."""

from astromesh.channels.rest import (
    agents,
    builtin_tools,
    health,
    lifecycle,
    memory,
    observability,
    rag,
    runs,
    system,
    templates,
    tools,
    usage,
    workflows,
)

ROUTERS = (
    health.router,
    system.router,
    agents.router,
    lifecycle.router,
    runs.router,
    memory.router,
    tools.router,
    builtin_tools.router,
    rag.router,
    templates.router,
    observability.router,
    usage.router,
    workflows.router,
)

__all__ = ["ROUTERS"]
