"""``astromesh new agent|workflow|tool``: scaffold files that validate, like upstream's
``astromeshctl new``.

``new agent NAME`` writes ``NAME.agent.yaml`` into the agents folder: from an AgentTemplate of
that folder (``--template``, with ``--var key=value`` for its blanks) or a plain ReAct agent
on the embedded model (``--provider``/``--model`` to choose another). The document is
validated before it is written, so a bad value is an error naming the field, not a broken
file. ``new tool NAME`` writes ``NAME.py`` (a typed Python function: its JSON schema comes
from the hints) into the agents folder, where ``type: python`` handlers are imported from,
and prints the lines that give it to an agent. ``new workflow NAME --agent A`` writes
``workflows/NAME.workflow.yaml``: one step running agent ``A`` of the folder on the trigger's
query (upstream's scaffold has no steps, which a Workflow must have), and with ``--approval``
a human approval of its answer; it is validated with the folder's agents before it is
written.
"""

from __future__ import annotations

import keyword
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console

from astromesh.config import load_path, load_text
from astromesh.config.agent_template import TemplateVariableError
from astromesh.config.constants import NAME_RE, PATTERNS
from astromesh.config.loader import load_files, yaml_files_beside
from astromesh.runtime import default_agents_dir

app = typer.Typer(
    help="Scaffold agents, workflows and tools (files that validate).", no_args_is_help=True
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

AgentsOption = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        help="Agents folder: where templates are read and files are written"
        " [default: $ASTROMESH_AGENTS_DIR or agents/]",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing file")]

EMBEDDED_PROVIDER = "llamacpp"
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"


@app.command("agent")
def new_agent(
    name: Annotated[str, typer.Argument(help="Agent name (lowercase, e.g. front-desk)")],
    template: Annotated[
        str | None, typer.Option("--template", help="An AgentTemplate of the agents folder")
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="A template variable, key=value (repeatable)"),
    ] = None,
    provider: Annotated[str, typer.Option(help="Model provider")] = EMBEDDED_PROVIDER,
    model: Annotated[str, typer.Option(help="Model name")] = EMBEDDED_MODEL,
    endpoint: Annotated[str | None, typer.Option(help="Model endpoint URL")] = None,
    pattern: Annotated[str, typer.Option(help="Orchestration pattern")] = "react",
    tools: Annotated[
        list[str] | None, typer.Option("--tool", help="A builtin tool to give it (repeatable)")
    ] = None,
    agents_dir: AgentsOption = None,
    force: ForceOption = False,
) -> None:
    """Write NAME.agent.yaml: from a template, or a ReAct agent on the embedded model."""
    folder = agents_dir or default_agents_dir()
    if not NAME_RE.match(name):
        _fail(f"'{name}' is not a valid agent name: lowercase letters, digits, '-' and '_'")
    if template is not None:
        document = _from_template(folder, template, name, _variables(var or []))
    else:
        if pattern not in PATTERNS:
            _fail(f"unknown pattern '{pattern}'; expected one of {', '.join(PATTERNS)}")
        document = _plain_agent(name, provider, model, endpoint, pattern, tools or [])
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    result = load_text(text, source=f"{name}.agent.yaml", env={})
    if result.errors:
        for issue in result.errors:
            err.print(f"[red]error:[/] {issue}")
        _fail("nothing written: the agent would not be valid")
    dest = _write(folder / f"{name}.agent.yaml", text, force=force)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    typer.echo(f"created {dest}")


@app.command("workflow")
def new_workflow(
    name: Annotated[str, typer.Argument(help="Workflow name (lowercase, e.g. lead-flow)")],
    agent: Annotated[
        str, typer.Option("--agent", help="The agent of the agents folder its step runs")
    ],
    description: Annotated[str, typer.Option(help="What the workflow does")] = "",
    approval: Annotated[
        bool, typer.Option("--approval", help="Add a human approval of the agent's answer")
    ] = False,
    agents_dir: AgentsOption = None,
    force: ForceOption = False,
) -> None:
    """Write workflows/NAME.workflow.yaml: a step running AGENT, optionally approved."""
    folder = agents_dir or default_agents_dir()
    if not NAME_RE.match(name):
        _fail(f"'{name}' is not a valid workflow name: lowercase letters, digits, '-' and '_'")
    text = yaml.safe_dump(
        _workflow(name, agent, description, approval), sort_keys=False, allow_unicode=True
    )
    dest = folder / "workflows" / f"{name}.workflow.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / dest.name
        draft.write_text(text, encoding="utf-8")
        served = folder if folder.is_dir() else None
        result = load_files(yaml_files_beside(draft, served), env={})
        problems = [issue for issue in result.errors if Path(issue.file) == draft]
        warnings = [issue for issue in result.warnings if Path(issue.file) == draft]
    if problems:
        for issue in problems:
            err.print(f"[red]error:[/] {str(issue).replace(str(draft), str(dest))}")
        _fail("nothing written: the workflow would not be valid")
    written = _write(dest, text, force=force)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    typer.echo(f"created {written}")


def _workflow(name: str, agent: str, description: str, approval: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"name": "answer", "agent": agent, "input": "{{ trigger.query }}"}
    ]
    if approval:
        steps.append(
            {
                "name": "review",
                "approval": {
                    "prompt": "Send this answer? {{ steps.answer.output.answer }}",
                    "timeout_seconds": 86400,
                    "on_reject": "fail",
                },
            }
        )
    return {
        "apiVersion": "astromesh/v1",
        "kind": "Workflow",
        "metadata": {"name": name, "version": "0.1.0", "namespace": "default"},
        "spec": {
            "description": description or f"Workflow {name}",
            "trigger": "api",
            "timeout_seconds": 3600 * 24 * 2 if approval else 600,
            "steps": steps,
        },
    }


@app.command("tool")
def new_tool(
    name: Annotated[str, typer.Argument(help="Tool name (a Python identifier, e.g. lookup_order)")],
    description: Annotated[str, typer.Option(help="What the tool does")] = "A custom tool.",
    agents_dir: AgentsOption = None,
    force: ForceOption = False,
) -> None:
    """Write NAME.py with a typed function and print how an agent uses it."""
    folder = agents_dir or default_agents_dir()
    if not name.isidentifier() or keyword.iskeyword(name):
        _fail(f"'{name}' is not a Python identifier (e.g. lookup_order)")
    dest = _write(folder / f"{name}.py", _tool_module(name, description), force=force)
    typer.echo(f"created {dest}\nadd it to an agent's spec:\n{tool_entry(name, description)}")


def tool_entry(name: str, description: str) -> str:
    """The ``spec.tools`` item for a tool written by ``new tool`` (YAML, indented)."""
    entry = [
        {"name": name, "type": "python", "handler": f"{name}:{name}", "description": description}
    ]
    dumped = yaml.safe_dump({"tools": entry}, sort_keys=False)
    return "\n".join(f"  {line}" for line in dumped.splitlines())


def _tool_module(name: str, description: str) -> str:
    summary = description.replace('"""', "'''")
    return f'''"""{summary}"""

from __future__ import annotations


def {name}(query: str) -> dict[str, str]:
    """{summary}

    Args:
        query: what the agent asks for (the model fills it; the type hints are the schema).
    """
    return {{"result": f"{name} received: {{query}}"}}
'''


def _plain_agent(
    name: str, provider: str, model: str, endpoint: str | None, pattern: str, tools: list[str]
) -> dict[str, Any]:
    display = name.replace("-", " ").replace("_", " ").title()
    candidate: dict[str, Any] = {"provider": provider, "model": model}
    if endpoint:
        candidate["endpoint"] = endpoint
    candidate["parameters"] = {"temperature": 0.3, "max_tokens": 1024}
    spec: dict[str, Any] = {
        "identity": {"display_name": display, "description": f"Agent {display}"},
        "model": {"primary": candidate},
        "prompts": {"system": "You are {{ agent.display_name }}, a helpful assistant."},
        "orchestration": {"pattern": pattern, "max_iterations": 10, "timeout_seconds": 60},
    }
    if tools:
        spec["tools"] = [{"name": tool, "type": "builtin"} for tool in tools]
    return {
        "apiVersion": "astromesh/v1",
        "kind": "Agent",
        "metadata": {"name": name, "version": "0.1.0", "namespace": "default"},
        "spec": spec,
    }


def _from_template(
    folder: Path, template: str, name: str, values: dict[str, str]
) -> dict[str, Any]:
    templates = load_path(folder, env={}).templates if folder.exists() else {}
    found = templates.get(template)
    if found is None:
        known = ", ".join(sorted(templates)) or "none"
        _fail(f"no template '{template}' in {folder} (templates: {known})")
    try:
        document = found.render(values)
    except TemplateVariableError as exc:
        _fail(str(exc))
    document.setdefault("metadata", {})["name"] = name
    return document


def _variables(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--var takes key=value, got '{pair}'")
        values[key] = value
    return values


def _write(dest: Path, text: str, *, force: bool) -> Path:
    if dest.exists() and not force:
        _fail(f"{dest} exists; use --force to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)
