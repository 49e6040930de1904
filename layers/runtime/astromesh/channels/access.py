"""Who may do what, for every channel: a key to a principal, the role each route needs, the
tenant a principal acts in, and an agent a principal may see or run.

Free of any web framework: the REST app (through the dependencies in
:mod:`astromesh.channels.security`), the local WebSocket, the AWS WebSocket functions and
the messaging webhooks all call these, so the rules are written once and a Lambda that only
authenticates ($connect) does not import FastAPI.

Tenancy: a principal sees its tenant's registered agents and the file agents, nothing else.
Another tenant's agent is refused with the same 404 as an unknown name, so its existence is
never confirmed. An admin acts in its own tenant unless it names another one with
``?tenant=`` (:func:`acting_as`); anyone else naming a tenant other than its own gets 403.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from astromesh.auth import Principal, Role
from astromesh.auth.base import valid_tenant
from astromesh.channels.errors import AgentPaused, Forbidden, Unauthorized
from astromesh.errors import ValidationFailed
from astromesh.registry import AgentStatus

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.channels.catalog import AgentCatalog, CatalogEntry
    from astromesh.channels.services import Services

PUBLIC = None
"""A route any caller may use without a key (it proves who it is otherwise, or shows nothing
of any tenant's)."""

WEBSOCKET_PATH = "/v1/ws/agent/{name}"
"""The local WebSocket's route; the AWS WebSocket API is held to the same rule."""

TENANT_PARAM = "tenant"
"""The query parameter by which an admin names the tenant it acts in."""

ROUTE_ROLES: Mapping[tuple[str, str], Role | None] = {
    # -- public --------------------------------------------------------------------------
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the console page; it calls the API with the key typed in
    ("GET", "/console/{name}"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    # messaging platforms prove themselves with the channel's secret or signature
    ("GET", "/v1/channels/{channel}/webhook"): PUBLIC,
    ("POST", "/v1/channels/{channel}/webhook"): PUBLIC,
    # -- run and read: user ----------------------------------------------------------------
    ("GET", "/v1/agents"): Role.USER,
    ("GET", "/v1/agents/{name}"): Role.USER,
    ("GET", "/v1/agents/{name}/chain"): Role.USER,
    ("GET", "/v1/agents/{name}/chain/"): Role.USER,
    ("POST", "/v1/agents/{name}/run"): Role.USER,
    ("POST", "/v1/agents/{name}/stream"): Role.USER,
    ("WEBSOCKET", WEBSOCKET_PATH): Role.USER,  # and the AWS WebSocket API's $connect
    ("GET", "/v1/runs/{run_id}"): Role.USER,
    ("POST", "/v1/runs/{run_id}/cancel"): Role.USER,
    ("POST", "/v1/runs/{run_id}/tool_outputs"): Role.USER,
    ("GET", "/v1/memory/{agent}/history/{session_id}"): Role.USER,
    ("DELETE", "/v1/memory/{agent}/history/{session_id}"): Role.USER,
    ("GET", "/v1/memory/{agent}/semantic"): Role.USER,
    ("GET", "/v1/tools"): Role.USER,
    ("GET", "/v1/tools/builtin"): Role.USER,
    ("POST", "/v1/rag/query"): Role.USER,
    ("GET", "/v1/templates"): Role.USER,
    ("GET", "/v1/templates/"): Role.USER,  # upstream's client sends the slash
    ("GET", "/v1/templates/{name}"): Role.USER,
    ("POST", "/v1/templates/{name}/render"): Role.USER,  # renders, registers nothing
    ("GET", "/v1/rag/pipelines"): Role.USER,  # connection details redacted
    ("GET", "/v1/rag/pipelines/{name}"): Role.USER,
    ("GET", "/v1/system/status"): Role.USER,  # this process: version, uptime, agent count
    # workflows: run and read as agents; approvals are decided by APPROVE_ROLE (below)
    ("GET", "/v1/workflows"): Role.USER,
    ("GET", "/v1/workflows/{name}"): Role.USER,
    ("POST", "/v1/workflows/{name}/run"): Role.USER,
    ("GET", "/v1/workflows/runs/{run_id}"): Role.USER,
    ("POST", "/v1/workflows/runs/{run_id}/resume"): Role.USER,
    ("GET", "/v1/workflows/approvals"): Role.USER,
    # the tenant's own traces, kept with its runs (rest/observability.py)
    ("GET", "/v1/traces"): Role.USER,
    ("GET", "/v1/traces/{trace_id}"): Role.USER,
    # the tenant's own spending (rest/usage.py): the key's tenant, and its agents only
    ("GET", "/v1/metrics"): Role.USER,
    ("GET", "/v1/usage"): Role.USER,
    # -- manage the tenant's agents: developer (a file agent's status: admin, see below) ---
    ("POST", "/v1/agents"): Role.DEVELOPER,
    ("PUT", "/v1/agents/{name}"): Role.DEVELOPER,
    ("DELETE", "/v1/agents/{name}"): Role.DEVELOPER,
    ("POST", "/v1/agents/{name}/pause"): Role.DEVELOPER,
    ("POST", "/v1/agents/{name}/resume"): Role.DEVELOPER,
    ("POST", "/v1/agents/{name}/deploy"): Role.DEVELOPER,
    # running a builtin directly is what registering an agent with it allows: the same role,
    # and the registration policy applies (astromesh/channels/builtin_calls.py)
    ("POST", "/v1/tools/execute"): Role.DEVELOPER,
    ("POST", "/v1/workflows/register"): Role.DEVELOPER,  # with the registration policy
    ("POST", "/v1/workflows/runs/{run_id}/approve"): Role.DEVELOPER,  # APPROVE_ROLE
    ("POST", "/v1/workflows/runs/{run_id}/reject"): Role.DEVELOPER,
    # refused (501 rag_pipelines_read_only): pipelines are the operator's documents
    ("POST", "/v1/rag/pipelines"): Role.DEVELOPER,
    ("PUT", "/v1/rag/pipelines/{name}"): Role.DEVELOPER,
    ("DELETE", "/v1/rag/pipelines/{name}"): Role.DEVELOPER,
    # -- shared by every tenant: admin -----------------------------------------------------
    ("POST", "/v1/rag/ingest"): Role.ADMIN,  # RAG pipelines are the folder's, every tenant's
    ("GET", "/metrics"): Role.ADMIN,  # names every tenant's agents
    ("GET", "/v1/system/doctor"): Role.ADMIN,  # the operator's infrastructure and its errors
    ("GET", "/v1/providers"): Role.ADMIN,  # the operator's model endpoints
}
"""The least role of every route, ``(method, path template)`` -> role (``PUBLIC``: no key).

One table, so a reviewer sees every rule at once; :func:`route_role` refuses a route missing
here as admin-only, and a test walks the app's routes so a new route cannot ship without a
line. Pausing, resuming or deploying a *file* agent changes it for every tenant and needs
:data:`FILE_AGENT_STATUS_ROLE` on top of the route's role."""

FILE_AGENT_STATUS_ROLE = Role.ADMIN

APPROVE_ROLE = Role.DEVELOPER
"""The least role that decides a workflow's approval: the key that only runs workflows
(``user``) cannot approve its own request. A step's ``approver: role:admin`` raises it."""


def require_approver(principal: Principal, asked: str | None, approver: str) -> None:
    """Refuse a decision the key may not make on an approval that asks ``asked``.

    ``asked`` is the step's ``approver``: ``role:<role>`` needs that role (at least
    :data:`APPROVE_ROLE`); a name must be the ``approver`` the decision is made as.

    Raises:
        Forbidden: naming the role or the approver the approval needs.
    """
    needed = APPROVE_ROLE
    if asked is not None and asked.startswith("role:"):
        wanted = Role(asked.removeprefix("role:"))
        needed = wanted if wanted.includes(needed) else needed
    require_role(principal, needed, "deciding this workflow approval")
    if asked is not None and not asked.startswith("role:") and approver != asked:
        raise Forbidden(f"this approval asks {asked!r}; the decision was made as {approver!r}")


def route_role(method: str, path: str) -> Role | None:
    """The role ``method path`` needs; ``admin`` for a route the table forgot (fail closed).
    ``HEAD`` is answered by the ``GET`` route, so it needs what ``GET`` needs."""
    verb = method.upper()
    return ROUTE_ROLES.get(("GET" if verb == "HEAD" else verb, path), Role.ADMIN)


def require_role(principal: Principal, needed: Role | None, action: str) -> None:
    """Refuse a principal whose role is below ``needed``.

    Raises:
        Forbidden: naming the role ``action`` needs and the key's.
    """
    if needed is not None and not principal.role.includes(needed):
        raise Forbidden(
            f"{action} needs the role '{needed.value}' (or higher); this API key has the role"
            f" '{principal.role.value}'"
        )


async def authenticate(services: Services, key: str | None) -> Principal:
    """The principal for ``key``.

    Without a key, the caller is let in only while the server runs open: auth is not
    ``required`` and no active key exists in the store (checked on each such request, so a
    key created with ``astromesh keys create`` closes the server at once). The open server's
    caller is the local operator: admin of tenant ``default``.

    Raises:
        Unauthorized: a missing key where one is needed, or an unknown or revoked key.
    """
    store = await services.keys()
    if key is None:
        if services.settings.auth == "required" or await store.has_active():
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        return Principal.open()
    record = await store.verify(key)
    if record is None:
        raise Unauthorized("unknown or revoked API key")
    return Principal(record.tenant, frozenset(record.agents), record.key_id, record.role)


def acting_as(principal: Principal, tenant: str | None) -> Principal:
    """The principal acting in ``tenant`` (``?tenant=``): any tenant for an admin, only its
    own for anyone else (refused rather than ignored, so a request meant for another tenant
    never silently acts on the caller's own agent of the same name).

    Raises:
        ValidationFailed: ``tenant`` is not spelt like a tenant.
        Forbidden: a non-admin names a tenant other than its own.
    """
    if tenant is None or tenant == principal.tenant:
        return principal
    if not valid_tenant(tenant):
        raise ValidationFailed(
            f"tenant {tenant!r} is not valid: use lowercase letters, digits, '-' and '_'"
        )
    if not principal.is_admin:
        raise Forbidden(
            f"acting in another tenant (?{TENANT_PARAM}=) needs the role 'admin'; this API key"
            f" has the role '{principal.role.value}' and acts in its own tenant only"
        )
    return dataclasses.replace(principal, tenant=tenant)


def require_agent(principal: Principal, agent: str) -> None:
    """Refuse an agent outside the key's set (checked before looking the agent up, so a key
    cannot probe which agents exist).

    Raises:
        Forbidden: the key may not use ``agent``.
    """
    if not principal.allows(agent):
        raise Forbidden(f"this API key may not use agent {agent!r}")


async def visible_entry(catalog: AgentCatalog, principal: Principal, name: str) -> CatalogEntry:
    """The agent ``name`` as the principal's tenant sees it, if the key may use it (403
    first, then 404 for a name neither the tenant nor the folder has)."""
    require_agent(principal, name)
    return await catalog.entry(name, tenant=principal.tenant)


def require_status_change(principal: Principal, entry: CatalogEntry) -> None:
    """Refuse changing a file agent's status to anyone but an admin: it is every tenant's.

    Raises:
        Forbidden: ``entry`` is a file agent and the principal is not an admin.
    """
    if entry.origin == "file":
        require_role(
            principal,
            FILE_AGENT_STATUS_ROLE,
            f"pausing, resuming or deploying the file agent {entry.name!r} (shared by every"
            " tenant)",
        )


async def runnable_agent(catalog: AgentCatalog, principal: Principal, name: str) -> Agent:
    """The built agent ``name``, refusing a paused one with 409."""
    entry = await visible_entry(catalog, principal, name)
    if entry.status is AgentStatus.PAUSED:
        raise AgentPaused(f"agent {name!r} is paused; POST /v1/agents/{name}/resume to run it")
    return await catalog.agent(entry)
