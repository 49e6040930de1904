"""``kind: Workflow``: upstream's durable multi-step document, validated like every kind.

A workflow is a list of named steps, each exactly one of ``agent`` (with an ``input``
template), ``tool`` (a builtin, with ``arguments`` templates), ``switch`` (cases of ``when``
/ ``goto`` and a ``default``), ``wait`` (a duration, a moment, or until resumed), ``approval``
(a person decides) or ``parallel`` (agent and tool branches at once). Everything a document
can name is checked here, before anything runs, so a bad file is an issue on its line:
``goto``/``on_error``/``on_reject`` targets exist, step names are unique, a loop passes
through a wait or an approval (an unattended loop would spin until the transition limit),
durations and counts stay under :mod:`astromesh.config.limits`, and every template compiles
and trial-renders inside the bounded sandbox (a template bomb is refused at load).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.constants import BUILTIN_TOOLS, NAME_RE
from astromesh.config.issues import config_error, suggest, with_suggestion
from astromesh.config.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_PARALLEL_BRANCHES,
    MAX_PROMPT_CHARS,
    MAX_SWITCH_CASES,
    MAX_WORKFLOW_ARGUMENT_VALUES,
    MAX_WORKFLOW_SECONDS,
    MAX_WORKFLOW_STEPS,
    check_name_length,
)
from astromesh.config.templates import check_template
from astromesh.config.tools import check_http_url, check_secret_env

ON_ERROR_CONTINUE = "continue"
ON_ERROR_FAIL = "fail"
STEP_TYPES = ("agent", "tool", "switch", "wait", "approval", "parallel")
DEFAULT_TIMEOUT_SECONDS = 300.0
"""Upstream's default run timeout, for workflows with no wait or approval step."""

Seconds = float


def _template(value: str | None, field: str | None = None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_PROMPT_CHARS:
        raise config_error(
            f"template too long: {len(value)} characters, the limit is {MAX_PROMPT_CHARS}",
            field=field,
        )
    return check_template(value, field=field)


class StepRetry(ConfigModel):
    """How a failed agent or tool step is attempted again before ``on_error`` applies."""

    max_attempts: int = Field(1, ge=1, le=10)
    backoff: Literal["fixed", "exponential"] = "fixed"
    initial_delay_seconds: float = Field(1.0, ge=0, le=3600)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if self.backoff == "exponential":
            return self.initial_delay_seconds * 2 ** (attempt - 1)
        return self.initial_delay_seconds


class SwitchCase(ConfigModel):
    """One case: go to ``goto`` when ``when`` renders ``true``/``1``/``yes``, or always
    (``default: true``) when no case before it matched."""

    when: str | None = None
    goto: str
    default: bool = False

    @field_validator("when")
    @classmethod
    def _when(cls, value: str | None) -> str | None:
        return _template(value)

    @model_validator(mode="after")
    def _when_or_default(self) -> SwitchCase:
        if self.default == (self.when is not None):
            raise config_error(
                "a switch case has exactly one of 'when' (a condition) or 'default: true'",
                field="when" if self.when is not None else "goto",
            )
        return self


class WaitSpec(ConfigModel):
    """Pause the run: for ``duration_seconds``, until the moment ``until`` (an ISO 8601
    time, a template), or with neither until ``POST /v1/workflows/runs/{id}/resume``
    (at most ``timeout_seconds``; then the step fails and ``on_error`` applies)."""

    duration_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_WORKFLOW_SECONDS,
        validation_alias=AliasChoices("duration_seconds", "seconds", "duration"),
    )
    until: str | None = None
    resume_key: str | None = None
    """Upstream's name for the resume (accepted; a run is resumed by its id here)."""
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_WORKFLOW_SECONDS)

    @field_validator("until")
    @classmethod
    def _until(cls, value: str | None) -> str | None:
        return _template(value)

    @model_validator(mode="after")
    def _one_way(self) -> WaitSpec:
        if self.duration_seconds is not None and self.until is not None:
            raise config_error("a wait has 'duration_seconds' or 'until', not both", field="until")
        return self


class ApprovalNotify(ConfigModel):
    """Who is told that an approval waits: ``webhook`` is POSTed the question (run, step,
    rendered prompt, approver, expiry and the approve/reject routes) once, when the run
    suspends; signed like a webhook tool's call when ``secret_env`` is set. A posted
    workflow's URL and secret are held to the registration policy, as a webhook tool's."""

    webhook: str
    secret_env: str | None = None
    allow_private_network: bool = False

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value, "webhook")

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return check_secret_env(value)


class ApprovalSpec(ConfigModel):
    """A person approves or rejects, through ``POST .../approve`` or ``/reject``.

    ``approver`` names who is asked (listed by ``GET /v1/workflows/approvals?approver=``);
    ``role:admin`` or ``role:developer`` also sets the least role of the key that may
    decide. ``on_reject``: ``fail`` (the default: the run ends ``rejected``), ``continue``,
    or the step to go to. ``timeout_seconds``: past it the approval counts as rejected
    (``on_reject``, or the run ends ``timed_out``).
    """

    prompt: str = ""
    approver: str | None = Field(None, max_length=200)
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_WORKFLOW_SECONDS)
    on_reject: str = ON_ERROR_FAIL
    resume_key: str | None = None
    """Upstream's name for the resume (accepted; a run is approved by its id here)."""
    notify: ApprovalNotify | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return _template(value) or ""

    @field_validator("approver")
    @classmethod
    def _approver(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("role:"):
            role = value.removeprefix("role:")
            if role not in ("user", "developer", "admin"):
                hint = suggest(role, ("user", "developer", "admin"))
                raise config_error(
                    with_suggestion(
                        f"unknown role '{role}' in approver: expected role:user,"
                        " role:developer or role:admin",
                        hint,
                    )
                )
        return value


class WorkflowStep(ConfigModel):
    """One step; see the module doc. ``when`` skips it unless it renders truthy."""

    name: str
    agent: str | None = None
    input: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    switch: list[SwitchCase] | None = Field(None, max_length=MAX_SWITCH_CASES)
    wait: WaitSpec | None = None
    approval: ApprovalSpec | None = None
    parallel: list[WorkflowStep] | None = Field(
        None, min_length=1, max_length=MAX_PARALLEL_BRANCHES
    )
    retry: StepRetry | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_WORKFLOW_SECONDS)
    on_error: str = ON_ERROR_FAIL
    when: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        check_name_length(value, what="step name")
        if not NAME_RE.match(value):
            raise config_error(
                f"'{value}' is not a valid step name: use lowercase letters, digits, '-' and"
                " '_' (it is read in templates as steps['<name>'])"
            )
        return value

    @field_validator("input", "when")
    @classmethod
    def _templates(cls, value: str | None) -> str | None:
        return _template(value)

    @field_validator("tool")
    @classmethod
    def _builtin(cls, value: str | None) -> str | None:
        if value is not None and value not in BUILTIN_TOOLS:
            hint = suggest(value, BUILTIN_TOOLS)
            raise config_error(
                with_suggestion(
                    f"unknown tool '{value}': a workflow's tool step runs a builtin tool"
                    " (GET /v1/tools/builtin lists them)",
                    hint,
                ),
                suggestion=hint,
            )
        return value

    @field_validator("arguments")
    @classmethod
    def _argument_templates(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            for count, (path, text) in enumerate(_strings(value, ()), 1):
                if count > MAX_WORKFLOW_ARGUMENT_VALUES:
                    raise config_error(
                        f"too many argument values, the limit is {MAX_WORKFLOW_ARGUMENT_VALUES}"
                    )
                _template(text, field=".".join(path))
        return value

    @property
    def type(self) -> str:
        """Which of :data:`STEP_TYPES` this step is."""
        return next(t for t in STEP_TYPES if getattr(self, t) is not None)

    @model_validator(mode="after")
    def _exactly_one_type(self) -> WorkflowStep:
        given = [t for t in STEP_TYPES if getattr(self, t) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise config_error(
                f"step '{self.name}' must have exactly one of agent, tool, switch, wait,"
                f" approval or parallel (found: {found})",
                field=given[1] if len(given) > 1 else "name",
            )
        if self.input is not None and self.agent is None:
            raise config_error("'input' belongs to an agent step", field="input")
        if self.arguments is not None and self.tool is None:
            raise config_error("'arguments' belongs to a tool step", field="arguments")
        if self.retry is not None and self.type not in ("agent", "tool"):
            raise config_error("'retry' applies to agent and tool steps", field="retry")
        for i, branch in enumerate(self.parallel or []):
            if branch.type not in ("agent", "tool"):
                raise config_error(
                    f"a parallel branch is an agent or a tool step, not {branch.type}",
                    field=f"parallel.{i}.{branch.type}",
                )
            if branch.on_error not in (ON_ERROR_CONTINUE, ON_ERROR_FAIL):
                raise config_error(
                    "a parallel branch's on_error is 'continue' or 'fail' (the parallel"
                    " step's own on_error may go to a step)",
                    field=f"parallel.{i}.on_error",
                )
        return self


def _strings(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, (*path, str(k)))]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, (*path, str(i)))]
    return []


class WorkflowSpec(ConfigModel):
    """``spec`` of a Workflow."""

    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    trigger: Literal["api"] = "api"
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_WORKFLOW_SECONDS)
    steps: list[WorkflowStep] = Field(min_length=1, max_length=MAX_WORKFLOW_STEPS)

    @property
    def deadline_seconds(self) -> float | None:
        """How long a run may take: ``timeout_seconds``; unset, upstream's 300 s unless a
        step waits or asks for approval (then each wait and approval bounds itself)."""
        if self.timeout_seconds is not None:
            return self.timeout_seconds
        if any(s.type in ("wait", "approval") for s in self.steps):
            return None
        return DEFAULT_TIMEOUT_SECONDS

    def step(self, name: str) -> WorkflowStep:
        """The step (or parallel branch) called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
            for branch in step.parallel or []:
                if branch.name == name:
                    return branch
        raise KeyError(name)

    def parent_of(self, name: str) -> WorkflowStep | None:
        """The parallel step ``name`` is a branch of, if it is one."""
        for step in self.steps:
            if any(b.name == name for b in step.parallel or []):
                return step
        return None

    def agents(self) -> list[tuple[str, str]]:
        """``(field path under spec, agent name)`` of every agent the workflow runs."""
        found: list[tuple[str, str]] = []
        for i, step in enumerate(self.steps):
            if step.agent is not None:
                found.append((f"steps.{i}.agent", step.agent))
            for j, branch in enumerate(step.parallel or []):
                if branch.agent is not None:
                    found.append((f"steps.{i}.parallel.{j}.agent", branch.agent))
        return found

    def notifications(self) -> list[tuple[str, ApprovalNotify]]:
        """``(field path under spec, notify)`` of every approval that notifies."""
        return [
            (f"steps.{i}.approval.notify", step.approval.notify)
            for i, step in enumerate(self.steps)
            if step.approval is not None and step.approval.notify is not None
        ]

    def tools(self) -> list[tuple[str, str]]:
        """``(field path under spec, builtin name)`` of every tool the workflow calls."""
        found: list[tuple[str, str]] = []
        for i, step in enumerate(self.steps):
            if step.tool is not None:
                found.append((f"steps.{i}.tool", step.tool))
            for j, branch in enumerate(step.parallel or []):
                if branch.tool is not None:
                    found.append((f"steps.{i}.parallel.{j}.tool", branch.tool))
        return found

    @model_validator(mode="after")
    def _names_and_targets(self) -> WorkflowSpec:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            branches = enumerate(step.parallel or [])
            names = [(f"steps.{i}.parallel.{j}.name", b.name) for j, b in branches]
            for path, name in [(f"steps.{i}.name", step.name), *names]:
                if name in seen:
                    raise config_error(f"duplicate step name '{name}'", field=path)
                seen.add(name)
        top = [s.name for s in self.steps]
        for path, target in _targets(self.steps):
            if target not in top:
                hint = suggest(target, top)
                raise config_error(
                    with_suggestion(
                        f"unknown step '{target}': expected one of {', '.join(top)}"
                        + ("" if path.endswith("goto") else ", 'continue' or 'fail'"),
                        hint,
                    ),
                    field=path,
                    suggestion=hint,
                )
        cycle = _unattended_cycle(self.steps)
        if cycle is not None:
            path, names = cycle
            raise config_error(
                f"the steps {' -> '.join(names)} form a loop with no wait or approval in it;"
                " a run would go round it without pause: add a wait or an approval step to"
                " the loop",
                field=path,
            )
        return self


def _targets(steps: list[WorkflowStep]) -> list[tuple[str, str]]:
    """``(field path, step name)`` of every jump a step can make."""
    found: list[tuple[str, str]] = []
    for i, step in enumerate(steps):
        for j, case in enumerate(step.switch or []):
            found.append((f"steps.{i}.switch.{j}.goto", case.goto))
        if step.on_error not in (ON_ERROR_CONTINUE, ON_ERROR_FAIL):
            found.append((f"steps.{i}.on_error", step.on_error))
        if step.approval is not None and step.approval.on_reject not in (
            ON_ERROR_CONTINUE,
            ON_ERROR_FAIL,
        ):
            found.append((f"steps.{i}.approval.on_reject", step.approval.on_reject))
    return found


def successors(steps: list[WorkflowStep], index: int) -> list[tuple[str, int]]:
    """``(field path, step index)`` of every step a run can go to from step ``index``."""
    step = steps[index]
    position = {s.name: i for i, s in enumerate(steps)}
    nxt: list[tuple[str, int]] = []
    falls_through = step.switch is None or not any(c.default for c in step.switch)
    if falls_through and index + 1 < len(steps):
        nxt.append((f"steps.{index}.name", index + 1))
    for path, target in _targets([step]):
        absolute = path.replace("steps.0.", f"steps.{index}.", 1)
        if target in position:
            nxt.append((absolute, position[target]))
    return nxt


def _unattended_cycle(steps: list[WorkflowStep]) -> tuple[str, list[str]] | None:
    """A loop through steps none of which waits or asks for approval: the field of the jump
    that closes it and the steps on it; ``None`` when every loop pauses somewhere."""
    pausing = {i for i, s in enumerate(steps) if s.type in ("wait", "approval")}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    trail: list[int] = []

    def visit(i: int) -> tuple[str, list[str]] | None:
        state[i] = 1
        trail.append(i)
        for path, j in successors(steps, i):
            if j in pausing:
                continue
            if state.get(j) == 1:
                loop = [*trail[trail.index(j) :], j]
                return path, [steps[k].name for k in loop]
            if j not in state:
                found = visit(j)
                if found is not None:
                    return found
        trail.pop()
        state[i] = 2
        return None

    for start in range(len(steps)):
        if start not in state and start not in pausing:
            found = visit(start)
            if found is not None:
                return found
    return None


RESERVED_NAMES = frozenset({"register", "approvals", "runs"})
"""Words of the ``/v1/workflows/...`` routes, which a workflow's name cannot be."""


class WorkflowDocument(ConfigDocument):
    """A ``kind: Workflow`` document."""

    kind: Literal["Workflow"]
    spec: WorkflowSpec

    @model_validator(mode="after")
    def _not_a_route(self) -> WorkflowDocument:
        if self.metadata.name in RESERVED_NAMES:
            raise config_error(
                f"'{self.metadata.name}' is a word of the /v1/workflows routes; name the"
                " workflow otherwise",
                field="metadata.name",
            )
        return self
