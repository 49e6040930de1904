"""``GET /v1/system/doctor``: upstream's ``{"healthy", "checks": {name: {status, message}}}``,
with checks that touch the real parts.

- ``state_store``: the runs store answers a read (a missing run is the expected answer) and
  the control plane (registry, API keys) answers a query;
- ``redis``: a ``PING`` to the configured Redis (circuit breaker, budgets, tiered state), or
  ``not_configured``;
- ``agents``: every file agent was built; agents skipped at load, and documents that did not
  load, make it ``degraded`` and are named;
- ``provider:<candidate>``: each model candidate of the file agents answers its health probe
  (the router's own pre-call check, :meth:`~astromesh.models.base.Model.probe`).

Every check is bounded by :data:`CHECK_TIMEOUT` and all run at once, so the doctor answers
within seconds even when a server hangs; a check that fails says why in ``message`` and never
turns the answer into a 5xx. Registered agents are the tenants' and are not probed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from astromesh.errors import AstromeshError, NotFoundError
from astromesh.models.health import PROBE_TIMEOUT
from astromesh.models.strategies import candidate_key
from astromesh.runtime import REDIS_URL_ENV

if TYPE_CHECKING:
    from astromesh.channels.services import Services
    from astromesh.models.base import Model
    from astromesh.runtime import AgentRuntime

CHECK_TIMEOUT = 3.0
"""Seconds any one check may take before it is reported ``unavailable``."""

HEALTHY_STATUSES = frozenset({"ok", "not_configured"})
"""Statuses that do not make the system unhealthy (a part not configured is not a fault)."""

Check = dict[str, str]


async def run_checks(services: Services) -> dict[str, Any]:
    """The doctor's report: ``{"healthy": bool, "checks": {name: {"status", "message"}}}``."""
    runtime = services.runtime
    named: dict[str, Awaitable[Check]] = {
        "state_store": _state_store(services),
        "redis": _redis(runtime),
        "agents": _agents(runtime),
    }
    for key, model in (await _candidates(runtime)).items():
        named[f"provider:{key}"] = _provider(model)
    results = await asyncio.gather(*(_bounded(check) for check in named.values()))
    checks = dict(zip(named, results, strict=True))
    healthy = all(check["status"] in HEALTHY_STATUSES for check in checks.values())
    return {"healthy": healthy, "checks": checks}


async def _bounded(check: Awaitable[Check]) -> Check:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return {"status": "unavailable", "message": f"no answer within {CHECK_TIMEOUT:g}s"}
    except AstromeshError as exc:
        return {"status": "error", "message": exc.message}
    except Exception as exc:  # noqa: BLE001 - a diagnostic reports any failure, never raises
        return {"status": "error", "message": f"{type(exc).__name__}: {exc}"}


async def _state_store(services: Services) -> Check:
    backend = await services.runtime.state()
    with contextlib.suppress(NotFoundError):  # the store answered: the id exists nowhere
        await backend.runs.get(f"doctor-{uuid.uuid4().hex}")
    await (await services.keys()).has_active()
    kind = type(backend).__name__.removesuffix("Backend").lower()
    return {"status": "ok", "message": f"{kind} state store and control plane answered"}


def redis_url(runtime: AgentRuntime) -> str | None:
    """The Redis this runtime uses (RuntimeConfig ``spec.state.redis_url``, else
    ``ASTROMESH_REDIS_URL``), or ``None``."""
    doc = runtime.config.runtime
    configured = doc.spec.state.redis_url if doc is not None and doc.spec.state else None
    return configured or runtime.env.get(REDIS_URL_ENV) or None


async def _redis(runtime: AgentRuntime) -> Check:
    url = redis_url(runtime)
    if url is None:
        return {
            "status": "not_configured",
            "message": f"no Redis configured (spec.state.redis_url or {REDIS_URL_ENV})",
        }
    import redis.asyncio as aioredis

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"  # never the password
    client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to answer PING is the finding
        return {"status": "error", "message": f"Redis at {where} did not answer: {exc}"}
    finally:
        await client.aclose()
    return {"status": "ok", "message": f"Redis at {where} answered PING"}


async def _agents(runtime: AgentRuntime) -> Check:
    skipped = await runtime.check_agents()
    runnable = runtime.agent_names()
    problems = [f"{name}: {issue.message}" for name, issue in sorted(skipped.items())]
    problems += [f"{issue.file}: {issue.message}" for issue in runtime.issues]
    if problems:
        return {
            "status": "degraded",
            "message": f"{len(runnable)} agent(s) loaded; not loaded: " + "; ".join(problems),
        }
    return {"status": "ok", "message": f"{len(runnable)} agent(s) loaded"}


async def _candidates(runtime: AgentRuntime) -> dict[str, Model]:
    """Every model candidate of the file agents that built, once per candidate."""
    found: dict[str, Model] = {}
    for name in runtime.agent_names():
        try:
            agent = await runtime.get(name)
        except AstromeshError:
            continue  # reported by the agents check
        for model in agent.router.models():
            found.setdefault(candidate_key(model), model)
    return found


async def _provider(model: Model) -> Check:
    settings = model.settings
    where = settings.endpoint or "its default endpoint"
    if await model.probe(PROBE_TIMEOUT):
        return {"status": "ok", "message": f"{settings.label} model {settings.model} at {where}"}
    return {
        "status": "unavailable",
        "message": f"{settings.label} model {settings.model} at {where} did not answer its"
        " health check",
    }
