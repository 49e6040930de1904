"""Error classes shared by every layer.

Each class is a stable name: the REST layer maps them to HTTP statuses and a Step Functions
``Catch`` matches on the exception class name, so they must not be renamed lightly.
"""

from __future__ import annotations


class AstromeshError(Exception):
    """Base of every error the runtime raises on purpose.

    ``code`` is a short machine-readable identifier; ``status`` is the HTTP status the REST
    layer answers with.
    """

    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(AstromeshError):
    """Something named by the caller (an agent, a run, a pipeline) does not exist."""

    code = "not_found"
    status = 404


class ValidationFailed(AstromeshError):
    """Input was understood but is not acceptable."""

    code = "invalid_request"
    status = 422


class ConflictError(AstromeshError):
    """An optimistic-concurrency check failed: someone else wrote first."""

    code = "conflict"
    status = 409


class ConfigurationError(AstromeshError):
    """The runtime's configuration cannot be used (a missing model file, an unknown provider).

    ``field`` is the document field at fault (``spec.tools.0``) when the raiser knows it, so a
    refusal can point at the line of YAML to fix.
    """

    code = "configuration_error"
    status = 500
    field: str | None = None

    def at_field(self, field: str) -> ConfigurationError:
        """Note ``field`` as where this error comes from, unless a narrower one is known."""
        if self.field is None:
            self.field = field
        return self


class AgentUnrunnable(ConfigurationError):
    """A file agent that validates but cannot run here (a webhook URL the SSRF guard refuses,
    a python tool whose module does not import...): it was skipped at load, and a request to
    run it is refused with this 409 naming why, rather than failing with a 500 on every run.
    """

    code = "agent_unrunnable"
    status = 409


class ProviderError(AstromeshError):
    """A model provider failed. ``retryable`` tells the router whether to try the next candidate.

    ``retry_after`` is the server's own hint (an HTTP ``Retry-After``, in seconds from when
    the error was made) of when the same backend may be asked again: the router never retries
    it sooner, and tells the circuit breaker so other requests and instances wait too. On
    :class:`ProviderUnavailable` it is the soonest any candidate is expected back, when every
    candidate's is known.
    """

    code = "provider_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}/{model}: {message}")
        self.provider = provider
        self.model = model
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    """The provider did not answer within its timeout."""

    code = "provider_timeout"
    status = 504


class ProviderUnavailable(ProviderError):
    """No candidate could serve the request (every provider failed or was skipped)."""

    code = "provider_unavailable"
    status = 503


class ToolError(AstromeshError):
    """A tool failed in a way the model cannot correct (its result reports the failure)."""

    code = "tool_error"
    status = 500


class StateUnavailable(AstromeshError):
    """A state server (Redis, PostgreSQL) cannot be reached, or dropped the connection.

    Raised by the stores layer in place of the client library's own connection errors, so
    the REST layer answers ``503`` with ``Retry-After`` and this stable code (the caller may
    simply retry; nothing was half-written by the failed call) instead of a bare ``500``, and
    the executor records the run as failed with this reason once a store takes the write.
    """

    code = "state_unavailable"
    status = 503
    retry_after = 2
    """Seconds a client should wait before retrying: long enough for a restarting server to
    come back, short enough that an interrupted conversation resumes quickly."""

    def __init__(self, store: str, cause: BaseException) -> None:
        detail = str(cause).strip() or type(cause).__name__
        super().__init__(f"the {store} state store is unavailable ({detail}); retry shortly")
        self.store = store
