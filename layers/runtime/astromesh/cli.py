"""The ``astromesh`` command: validate documents, list agents, run one from the terminal."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from astromesh import __version__
from astromesh.errors import AstromeshError
from astromesh.runtime import AgentRuntime, default_agents_dir

app = typer.Typer(
    name="astromesh",
    help="Astromesh agent runtime: declarative YAML agents, run locally or on AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

AgentsOption = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        help="Folder of astromesh/v1 documents [default: $ASTROMESH_AGENTS_DIR or agents/]",
    ),
]


@app.command()
def version() -> None:
    """Print the Astromesh version."""
    typer.echo(__version__)


@app.command()
def validate(
    path: Annotated[
        Path | None, typer.Argument(help="A file or a folder [default: agents/]")
    ] = None,
) -> None:
    """Check documents; exit 1 and print file:line: field: message for each problem."""
    from astromesh.config import load_path

    target = path or default_agents_dir()
    if not target.exists():
        err.print(f"[red]error:[/] {target}: no such file or folder")
        raise typer.Exit(2)
    result = load_path(target)
    for issue in result.errors:
        err.print(f"[red]error:[/] {issue}")
    counts = (
        f"{len(result.agents)} agent(s), {len(result.providers)} provider(s), "
        f"{len(result.rag_pipelines)} RAG pipeline(s) in {len(result.files)} file(s)"
    )
    if result.errors:
        err.print(f"{len(result.errors)} problem(s); {counts} valid")
        raise typer.Exit(1)
    typer.echo(f"ok: {counts}")


@app.command()
def agents(agents_dir: AgentsOption = None) -> None:
    """List the agents a folder defines."""
    runtime = AgentRuntime(agents_dir)
    _report_issues(runtime)
    for name in runtime.agent_names():
        doc = runtime.describe(name)
        identity = doc.spec.identity
        description = (identity.description if identity else None) or ""
        typer.echo(
            f"{name}\t{doc.metadata.version}\t{doc.metadata.namespace}\t"
            f"{doc.spec.orchestration.pattern}\t{description}"
        )


@app.command()
def run(
    agent: Annotated[str, typer.Argument(help="Agent name")],
    query: Annotated[str, typer.Argument(help="What to ask")],
    agents_dir: AgentsOption = None,
    session: Annotated[str, typer.Option("--session", help="Conversation id")] = "default",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object like the REST run response")
    ] = False,
) -> None:
    """Run an agent: stream its answer to stdout, usage to stderr."""
    status = asyncio.run(_run(agent, query, agents_dir, session, as_json))
    raise typer.Exit(status)


async def _run(agent: str, query: str, agents_dir: Path | None, session: str, as_json: bool) -> int:
    from astromesh.runs.events import RunEvent
    from astromesh.runs.views import run_response

    async def show(event: RunEvent) -> None:
        if as_json:
            return
        if event.type == "token":
            sys.stdout.write(event.data["content"])
            sys.stdout.flush()
        elif event.type == "tool_call":
            err.print(f"[dim]→ {event.data['name']}({json.dumps(event.data['arguments'])})[/]")
        elif event.type == "tool_result":
            mark = "✓" if event.data["ok"] else "✗"
            err.print(f"[dim]{mark} {event.data['name']}: {event.data['content'][:200]}[/]")

    async with AgentRuntime(agents_dir) as runtime:
        _report_issues(runtime)
        try:
            result = await runtime.run(agent, query, session_id=session, on_event=show)
        except AstromeshError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            return 2
    if as_json:
        typer.echo(json.dumps(run_response(result), ensure_ascii=False))
    else:
        sys.stdout.write("\n")
        usage = result.usage
        err.print(
            f"[dim]{result.status.value} · run {result.id} · {usage.model} · "
            f"{usage.tokens_in} in / {usage.tokens_out} out · ${usage.cost:.6f}[/]"
        )
        if result.error:
            err.print(f"[red]error:[/] {result.error}")
    return 0 if result.status.value == "succeeded" else 1


def _report_issues(runtime: AgentRuntime) -> None:
    for issue in runtime.issues:
        err.print(f"[yellow]warning:[/] skipped: {issue}")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
