"""Rendering a workflow's templates (``input``, ``arguments``, ``when``, ``prompt``,
``until``) in the bounded sandbox every document template uses.

Templates see ``trigger`` (the run's input) and ``steps.<name>`` with ``output``, ``data``,
``status`` and ``error`` of every step (``None`` for a step not reached). An agent step's
``output`` prints as its answer and also has ``.data`` (the agent's structured output, when
it has an output_schema) and ``.answer``, so upstream's ``{{ steps.qualify.output }}`` and
``{{ steps.qualify.output.data.score > 7 }}`` both read as written.
"""

from __future__ import annotations

from typing import Any

from astromesh.prompts.render import PromptTemplate
from astromesh.workflows.run import WorkflowRun

TRUTHY = frozenset({"true", "1", "yes"})


class AgentOutput(str):
    """An agent step's answer, with its structured ``data`` beside it."""

    data: Any
    answer: str

    def __new__(cls, answer: str, data: Any) -> AgentOutput:
        made = super().__new__(cls, answer)
        made.data = data
        made.answer = answer
        return made


def variables(run: WorkflowRun, agent_steps: set[str]) -> dict[str, Any]:
    """What the run's templates see (see the module doc)."""
    steps: dict[str, Any] = {}
    for name, state in run.steps.items():
        output = state.output
        if name in agent_steps and isinstance(output, str):
            output = AgentOutput(output, state.data)
        steps[name] = {
            "output": output,
            "data": state.data,
            "status": state.status.value,
            "error": state.error,
        }
    return {"trigger": run.trigger, "steps": steps, "run_id": run.id}


def render(source: str, field: str, values: dict[str, Any]) -> str:
    """``source`` rendered; raises ``ConfigurationError`` naming ``field`` when it fails."""
    return PromptTemplate(field, source, field=field).render(values)


def render_value(value: Any, field: str, values: dict[str, Any]) -> Any:
    """Every string inside ``value`` (a tool's ``arguments``) rendered as a template."""
    if isinstance(value, str):
        return render(value, field, values)
    if isinstance(value, dict):
        return {k: render_value(v, f"{field}.{k}", values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, f"{field}[{i}]", values) for i, v in enumerate(value)]
    return value


def truthy(source: str, field: str, values: dict[str, Any]) -> bool:
    """Whether a condition renders ``true``, ``1`` or ``yes`` (upstream's rule)."""
    return render(source, field, values).strip().lower() in TRUTHY
