"""Telling someone that an approval waits: an approval step's ``notify.webhook``.

When a run suspends at an approval whose step says ``notify``, the question is POSTed once to
the webhook: the run, the step, the rendered prompt, who is asked, when it expires and the
routes that decide it (absolute when ``ASTROMESH_PUBLIC_URL`` is set). The transport is the
``type: webhook`` tool's (:class:`astromesh.tools.webhook.WebhookTool`): the SSRF guard,
redirects refused, the ``X-Astromesh-Signature`` HMAC when ``secret_env`` is set, and a
POST never sent twice by a retry. ``X-Astromesh-Delivery`` names the request, so a receiver
that sees it twice (the process died between sending and recording it, and the run was
carried on after a restart: at-least-once) can drop the second.

Both executors call :class:`ApprovalNotifier`: the local one when its driver reaches the
approval, the Step Functions one once the task token is stored. What happened is recorded on
the pending approval (``notified_at``, ``notification``), so ``GET /v1/workflows/runs/{id}``
shows it and a run carried on after a restart is not announced again. A failed delivery does
not fail the run: the approval still waits, listed by ``GET /v1/workflows/approvals`` and the
console.

A posted workflow's webhook is held to the registration policy at registration (the hosts
registered agents may reach, no private network unless the policy allows it, only the
secrets it lists: :func:`notify_refusals`) and again here, through the same guard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from astromesh.config.workflow import ApprovalNotify, WorkflowDocument
from astromesh.errors import AstromeshError, ConflictError
from astromesh.security.grants import FILE_AGENT_GRANTS
from astromesh.tools.base import ToolContext
from astromesh.workflows.run import WorkflowRun, utcnow

if TYPE_CHECKING:
    from astromesh.security import RegistrationPolicy
    from astromesh.tools.ssrf import SSRFGuard
    from astromesh.workflows.store import WorkflowRunStore

logger = logging.getLogger(__name__)

PUBLIC_URL_ENV = "ASTROMESH_PUBLIC_URL"
DELIVERY_HEADER = "X-Astromesh-Delivery"
EVENT = "workflow.approval_requested"
REGISTERED = "registered"
_SAVE_ATTEMPTS = 3


def notify_refusals(notify: ApprovalNotify, policy: RegistrationPolicy) -> list[tuple[str, str]]:
    """``(field under notify, why)`` for what a posted workflow's ``notify`` may not do."""
    found: list[tuple[str, str]] = []
    if notify.allow_private_network and not policy.allow_private_network:
        found.append(
            (
                "allow_private_network",
                "posted workflows may not notify private networks (policy:"
                " RuntimeConfig spec.registration.allow_private_network)",
            )
        )
    try:
        _guard(notify, REGISTERED, policy).check_literal(notify.webhook)
    except AstromeshError as exc:
        found.append(
            ("webhook", f"{exc.message} (policy: RuntimeConfig spec.registration.network_hosts)")
        )
    if notify.secret_env is not None and notify.secret_env not in policy.secret_envs:
        allowed = ", ".join(sorted(policy.secret_envs)) or "none"
        found.append(
            (
                "secret_env",
                f"secret_env '{notify.secret_env}' would sign with a server secret; only"
                f" {allowed} may be used (policy: RuntimeConfig spec.registration.secret_envs)",
            )
        )
    return found


class ApprovalNotifier:
    """Sends a run's pending approval to its step's webhook, once; see the module doc.

    Args:
        store: where the run is, to record the delivery.
        document_of: the workflow the run runs.
        env: where ``secret_env`` and ``ASTROMESH_PUBLIC_URL`` are read.
        policy: what a posted workflow's webhook runs under (``None``: posted workflows'
            notifications are refused here too).
    """

    def __init__(
        self,
        store: WorkflowRunStore,
        document_of: Callable[[WorkflowRun], WorkflowDocument],
        *,
        env: Mapping[str, str],
        policy: RegistrationPolicy | None = None,
    ) -> None:
        self.store = store
        self.document_of = document_of
        self.env = env
        self.policy = policy

    async def __call__(self, run: WorkflowRun) -> WorkflowRun:
        """Notify ``run``'s pending approval if its step says so and it was not announced;
        return the run as stored afterwards."""
        pending = run.pending_approval
        if pending is None or pending.notified_at is not None:
            return run
        notify = _notify_of(self.document_of(run), pending.step)
        if notify is None:
            return run
        outcome = await self._deliver(run, notify)
        return await self._record(run, outcome)

    async def _deliver(self, run: WorkflowRun, notify: ApprovalNotify) -> str:
        from astromesh.tools.webhook import WebhookTool

        pending = run.pending_approval
        assert pending is not None
        if run.origin == REGISTERED and self.policy is None:
            return "not sent: posted workflows may not notify on this server"
        secret = None
        if notify.secret_env is not None:
            secret = self.env.get(notify.secret_env)
            if not secret:
                return f"not sent: secret_env {notify.secret_env!r} is not set"
        delivery = f"{run.id}:{pending.step}:{pending.requested_at.isoformat()}"
        try:
            sender = WebhookTool(
                "approval_notify",
                url=notify.webhook,
                method="POST",
                headers={DELIVERY_HEADER: delivery},
                secret=secret,
                guard=_guard(notify, run.origin, self.policy),
            )
            try:
                await sender.invoke(self._payload(run), ToolContext(run.id, run.workflow, run.id))
            finally:
                await sender.aclose()
        except AstromeshError as exc:
            logger.warning(
                "workflow_run=<%s> step=<%s> | approval notification failed: %s",
                run.id,
                pending.step,
                exc.message,
            )
            return f"failed: {exc.message}"
        return "delivered"

    def _payload(self, run: WorkflowRun) -> dict[str, Any]:
        pending = run.pending_approval
        assert pending is not None
        base = (self.env.get(PUBLIC_URL_ENV) or "").rstrip("/")
        route = f"{base}/v1/workflows/runs/{run.id}"
        return {
            "event": EVENT,
            "run_id": run.id,
            "workflow": run.workflow,
            "tenant": run.tenant,
            "step": pending.step,
            "prompt": pending.prompt,
            "approver": pending.approver,
            "requested_at": pending.requested_at.isoformat(),
            "expires_at": pending.expires_at.isoformat() if pending.expires_at else None,
            "approve": {"method": "POST", "url": f"{route}/approve"},
            "reject": {"method": "POST", "url": f"{route}/reject"},
            "run": {"method": "GET", "url": route},
        }

    async def _record(self, run: WorkflowRun, outcome: str) -> WorkflowRun:
        """Write the delivery on the pending approval it was for (re-reading on a conflict:
        a decision may have landed meanwhile, and then there is nothing to record)."""
        step, requested_at = run.pending_approval.step, run.pending_approval.requested_at  # type: ignore[union-attr]
        for _ in range(_SAVE_ATTEMPTS):
            pending = run.pending_approval
            if pending is None or pending.step != step or pending.requested_at != requested_at:
                return run
            pending.notified_at = utcnow()
            pending.notification = outcome
            try:
                return await self.store.save(run)
            except ConflictError:
                run = await self.store.get(run.id)
        logger.warning("workflow_run=<%s> | could not record the approval notification", run.id)
        return run


def _notify_of(workflow: WorkflowDocument, step: str) -> ApprovalNotify | None:
    for candidate in workflow.spec.steps:
        if candidate.name == step and candidate.approval is not None:
            return candidate.approval.notify
    return None


def _guard(notify: ApprovalNotify, origin: str, policy: RegistrationPolicy | None) -> SSRFGuard:
    """The agents folder's workflows reach what their webhook tools would; posted ones what
    the policy lets registered agents' webhook tools reach."""
    if origin != REGISTERED:
        return FILE_AGENT_GRANTS.tool_guard(allow_private_network=notify.allow_private_network)
    assert policy is not None
    return policy.grants().tool_guard(allow_private_network=notify.allow_private_network)
