"""API keys for a deployed stage, by invoking the ``api`` function directly.

Locally ``astromesh keys create`` writes to the state database. A deployed stage's database
sits in isolated subnets behind RDS Proxy with IAM auth, out of a laptop's reach, and in
Lambda every request needs a key: without this, a fresh deploy had no way to get its first
one. So the ``api`` function also accepts an event that only a direct invocation can produce
(API Gateway builds its proxy events itself; a client cannot add a top-level field to them)::

    aws lambda invoke --function-name astromesh-dev-api --cli-binary-format raw-in-base64-out \\
        --payload '{"astromesh_admin": {"action": "create_key", "tenant": "default",
                    "agents": ["*"], "role": "admin"}}' key.json

Who may do this is whoever IAM allows ``lambda:InvokeFunction`` on that function: the
account's operators, who can read the stage's secrets anyway. Actions: ``create_key``
(``tenant``, ``agents`` as a list or comma-separated, ``role``, ``label``; the answer holds
the key, shown this once), ``list_keys`` and ``revoke_key`` (``key_id``), the same three as
``astromesh keys``. The answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astromesh.auth import ApiKey
from astromesh.channels.services import Services
from astromesh.errors import AstromeshError

ADMIN_FIELD = "astromesh_admin"


def is_admin_event(event: Mapping[str, Any]) -> bool:
    """A direct invocation carrying an admin request, never an API Gateway event."""
    return (
        isinstance(event.get(ADMIN_FIELD), Mapping)
        and "requestContext" not in event
        and "httpMethod" not in event
    )


def _key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "agents": list(key.agents),
        "role": key.role.value,
        "label": key.label,
        "created_at": key.created_at.isoformat(timespec="seconds"),
        "revoked_at": key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else None,
    }


def _agents(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("'agents' is a list of agent names or a comma-separated string ('*': all)")


async def handle_admin(services: Services, request: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out one admin request on the stage's key store (the same one requests check)."""
    action = request.get("action")
    try:
        keys = await services.keys()
        if action == "create_key":
            tenant = request.get("tenant")
            if not isinstance(tenant, str) or not tenant:
                raise ValueError("'tenant' is required")
            issued = await keys.issue(
                tenant,
                _agents(request.get("agents", "*")),
                label=str(request.get("label", "")),
                role=str(request.get("role", "developer")),
            )
            return {"ok": True, "key": issued.plaintext, **_key_view(issued.record)}
        if action == "list_keys":
            return {"ok": True, "keys": [_key_view(k) for k in await keys.list()]}
        if action == "revoke_key":
            key_id = str(request.get("key_id", ""))
            if not await keys.revoke(key_id):
                return {"ok": False, "error": f"no active key {key_id!r}"}
            return {"ok": True, "revoked": key_id}
    except (AstromeshError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}
    return {
        "ok": False,
        "error": f"unknown action {action!r}: create_key, list_keys or revoke_key",
    }
