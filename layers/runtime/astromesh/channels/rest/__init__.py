"""The ``/v1`` REST routers, one module per resource, in the app's routing order.

Each module is imported on the first request under its prefixes (or for the OpenAPI
document), see :mod:`astromesh.channels.lazy_routers`.
"""

from astromesh.channels.lazy_routers import RouterModule

ROUTERS = tuple(
    RouterModule(f"astromesh.channels.rest.{name}", prefixes)
    for name, prefixes in (
        ("health", ("/v1/health",)),
        ("system", ("/v1/system", "/v1/providers")),
        ("agents", ("/v1/agents",)),
        ("lifecycle", ("/v1/agents",)),
        ("runs", ("/v1/runs",)),
        ("memory", ("/v1/memory",)),
        ("tools", ("/v1/tools",)),
        ("builtin_tools", ("/v1/tools",)),
        ("rag", ("/v1/rag",)),
        ("templates", ("/v1/templates",)),
        ("observability", ("/v1/traces",)),
        ("usage", ("/v1/usage", "/v1/metrics")),
        ("workflows", ("/v1/workflows",)),
    )
)

__all__ = ["ROUTERS"]
