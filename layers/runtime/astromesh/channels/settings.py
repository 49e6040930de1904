"""Settings of the HTTP app, read once from the environment by whoever builds the app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from astromesh.errors import ConfigurationError

AUTH_ENV = "ASTROMESH_AUTH"
MAX_BODY_ENV = "ASTROMESH_MAX_BODY_BYTES"
MAX_INFLIGHT_ENV = "ASTROMESH_MAX_INFLIGHT_RUNS"
TOOL_MODULES_ENV = "ASTROMESH_REGISTERED_TOOL_MODULES"
STANDARD_MACHINE_ENV = "ASTROMESH_SFN_STANDARD_ARN"
EXPRESS_MACHINE_ENV = "ASTROMESH_SFN_EXPRESS_ARN"
WORKFLOW_MACHINE_ENV = "ASTROMESH_SFN_WORKFLOW_ARN"

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_INFLIGHT_RUNS = 64

AuthMode = Literal["auto", "required"]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the app behaves; the runtime it serves is passed separately.

    Attributes:
        auth: ``required`` refuses every request without a valid key; ``auto`` (local
            default) runs open while no key exists in the store, and requires keys as soon as
            one does.
        max_body_bytes: larger request bodies are refused with 413 before they are read.
        max_inflight_runs: runs this process executes at once; more are refused with 429.
        background_runs: whether ``?mode=async`` runs in an asyncio task of this process
            (local server). In Lambda the process freezes after the response, so async runs
            start on the Standard state machine (``standard_machine_arn``), or answer 501
            when the deployment has none.
        standard_machine_arn: the Standard Step Functions machine that runs async runs
            (``ASTROMESH_SFN_STANDARD_ARN``, set by the CDK app).
        express_machine_arn: the Express machine that runs synchronous REST runs
            (``ASTROMESH_SFN_EXPRESS_ARN``, set by the CDK app): their tool calls and child
            agents then run in the ``tool_executor`` function, not in the API's. Unset,
            they run in this process.
        workflow_machine_arn: the Standard machine that runs workflow runs
            (``ASTROMESH_SFN_WORKFLOW_ARN``, set by the CDK app for the API function): a
            workflow run then starts an execution of it, and approving or rejecting sends its
            task token's success or failure. Unset, workflows run in this process.
        registered_tool_modules: Python modules (and their submodules) whose functions an
            agent registered through the API may use as tools. ``None``: the packages in
            the agents folder. Anything else would let a caller run any function installed
            on the server.
    """

    auth: AuthMode = "auto"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_inflight_runs: int = DEFAULT_MAX_INFLIGHT_RUNS
    background_runs: bool = True
    standard_machine_arn: str | None = None
    express_machine_arn: str | None = None
    workflow_machine_arn: str | None = None
    registered_tool_modules: tuple[str, ...] | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, lambda_: bool = False
    ) -> ServerSettings:
        """Settings from ``ASTROMESH_*`` variables; ``lambda_`` forces auth and no tasks.

        Raises:
            ConfigurationError: a variable holds something unusable.
        """
        env = os.environ if env is None else env
        auth = env.get(AUTH_ENV, "auto").strip().lower() or "auto"
        if auth not in ("auto", "required"):
            raise ConfigurationError(f"{AUTH_ENV} must be 'auto' or 'required', got {auth!r}")
        modules = env.get(TOOL_MODULES_ENV)
        return cls(
            auth="required" if lambda_ else auth,  # type: ignore[arg-type]
            max_body_bytes=_positive_int(env, MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES),
            max_inflight_runs=_positive_int(env, MAX_INFLIGHT_ENV, DEFAULT_MAX_INFLIGHT_RUNS),
            background_runs=not lambda_,
            standard_machine_arn=env.get(STANDARD_MACHINE_ENV) or None,
            express_machine_arn=env.get(EXPRESS_MACHINE_ENV) or None,
            workflow_machine_arn=env.get(WORKFLOW_MACHINE_ENV) or None,
            registered_tool_modules=(
                tuple(m.strip() for m in modules.split(",") if m.strip())
                if modules is not None
                else None
            ),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value
