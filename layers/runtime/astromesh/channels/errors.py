"""Every failure as ``{"error": {"code", "message"}, "detail": message}`` with the right
HTTP status (``detail`` is upstream's FastAPI field, see :func:`error_body`).

The runtime's own errors (``astromesh.errors``) already carry a ``code`` and a ``status``;
the few channel-only ones are added here, free of FastAPI so that code shared with the step
loop's workers (the catalog) can raise them. The app's handlers that turn them into
responses are in :mod:`astromesh.channels.error_handlers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from astromesh.config import ConfigIssue
from astromesh.errors import AstromeshError


class BadRequest(AstromeshError):
    """The request could not be read (malformed JSON, an unreadable body)."""

    code = "bad_request"
    status = 400


class Unauthorized(AstromeshError):
    code = "unauthorized"
    status = 401


class Forbidden(AstromeshError):
    code = "forbidden"
    status = 403


class PayloadTooLarge(AstromeshError):
    code = "payload_too_large"
    status = 413


class TooManyRuns(AstromeshError):
    """This process is already running as many runs as it is allowed to."""

    code = "too_many_runs"
    status = 429


class NotAvailable(AstromeshError):
    """A documented route whose feature is not built (or not deployed) here yet.

    Answering 501 with a specific code, rather than an empty result, keeps a client from
    mistaking "not built" for "nothing found".
    """

    status = 501

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DeliveryNotAccepted(AstromeshError):
    """A webhook delivery failed after verification for a reason that is not the
    platform's (an unexpected error in claiming or rate-limiting it): its claims were
    released, and ``503`` asks the platform to deliver it again, which it does."""

    code = "delivery_not_accepted"
    status = 503
    retry_after = 2


class NotConfigured(AstromeshError):
    """The agent has no such part (its semantic memory): 404 with a specific code, so a
    client can tell "this agent has none" from "nothing found". Not a 5xx: the server works,
    the agent is configured without it."""

    status = 404

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProviderOverrideRefused(AstromeshError):
    """A run asked for a model provider or key of its own (upstream's
    ``X-Astromesh-Provider-Name`` / ``-Key`` headers): refused rather than ignored, so a
    caller never believes its key paid for a run the operator's key paid for."""

    code = "provider_override_refused"
    status = 422


class AgentPaused(AstromeshError):
    code = "agent_paused"
    status = 409


class InvalidAgent(AstromeshError):
    """A posted agent document did not validate; ``issues`` say where, like the CLI."""

    code = "invalid_agent"
    status = 422

    def __init__(self, message: str, issues: Sequence[ConfigIssue]) -> None:
        super().__init__(message)
        self.issues = list(issues)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error body of every channel: ours (``error``, with a stable ``code`` and any
    ``extra`` such as ``fields``) and upstream's FastAPI ``detail`` beside it.

    Upstream's clients read ``detail`` as the message string (its web console throws
    ``new Error(body.detail)``), so ``detail`` is always the plain message, never FastAPI's
    list of validation errors: those are in ``error.fields``.
    """
    return {"error": {"code": code, "message": message, **extra}, "detail": message}
