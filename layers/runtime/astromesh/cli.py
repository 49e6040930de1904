"""The ``astromesh`` command: validate documents, list agents, run one, serve the API, keys."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from astromesh import __version__
from astromesh.cli_cost import register as register_cost
from astromesh.cli_models import app as models_app
from astromesh.cli_new import app as new_app
from astromesh.cli_rag import register as register_rag
from astromesh.cli_traces import register as register_traces
from astromesh.errors import AstromeshError
from astromesh.local.cli import app as local_app
from astromesh.runtime import AgentRuntime, default_agents_dir

if TYPE_CHECKING:
    from astromesh.auth import ApiKey, KeyStore

T = TypeVar("T")

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
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Treat warnings (upstream fields ignored here) as errors"),
    ] = False,
    served: Annotated[
        Path | None,
        typer.Option(
            "--agents",
            help="For a file: the folder it is served from, whose documents its references"
            " resolve against [default: the agents folder if it holds the file, else the"
            " file's own folder]",
        ),
    ] = None,
) -> None:
    """Check documents; exit 1 and print file:line: field: message for each problem.

    A file is checked with the documents it is served with (an agent it names may be defined
    in another file), reporting only its own problems. Upstream fields that mean nothing here are
    printed as warnings and do not fail the check unless ``--strict`` is given."""
    from astromesh.validation import validate_path

    target = path or default_agents_dir()
    if not target.exists():
        err.print(f"[red]error:[/] {target}: no such file or folder")
        raise typer.Exit(2)
    # Every valid agent is built too (offline: no store is created or reached), so one that
    # validates but cannot run here (a refused webhook URL, a tool that does not import) is
    # an error now rather than a 409 on every run.
    checked = asyncio.run(validate_path(target, served))
    problems = checked.problems
    if strict:
        problems += checked.warnings
    else:
        for warning in checked.warnings:
            err.print(f"[yellow]warning:[/] {warning}")
    for issue in problems:
        err.print(f"[red]error:[/] {issue}")
    counts = (
        f"{checked.agents - len(checked.unrunnable)} agent(s), {checked.providers}"
        f" provider(s), {checked.rag_pipelines} RAG pipeline(s) in {checked.files} file(s)"
    )
    if problems:
        err.print(f"{len(problems)} problem(s); {counts} valid")
        raise typer.Exit(1)
    warned = f" ({len(checked.warnings)} warning(s))" if checked.warnings else ""
    typer.echo(f"ok: {counts}{warned}")


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
    agent: Annotated[str | None, typer.Argument(help="Agent name")] = None,
    query: Annotated[str | None, typer.Argument(help="What to ask")] = None,
    agents_dir: AgentsOption = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Run this Workflow instead of an agent")
    ] = None,
    workflow_input: Annotated[
        str | None,
        typer.Option("--input", help="The workflow's trigger: a JSON object (or a query)"),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            help="Conversation id to continue (default: a new conversation, named on stderr)",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object like the REST run response")
    ] = False,
) -> None:
    """Run an agent: stream its answer to stdout, usage to stderr.

    Each run without ``--session`` is a conversation of its own (two unrelated questions must
    not see each other's turns); the summary line names it, so ``--session`` can continue it.
    With ``--workflow NAME --input JSON`` it runs a workflow instead (see docs/workflows.md).
    """
    if workflow is not None:
        from astromesh.cli_workflows import run_workflow

        raise typer.Exit(
            asyncio.run(run_workflow(workflow, workflow_input, agents_dir, as_json, err))
        )
    if agent is None or query is None:
        err.print("[red]error:[/] give AGENT and QUERY, or --workflow NAME --input JSON")
        raise typer.Exit(2)
    session = session or f"cli-{secrets.token_hex(4)}"
    status = asyncio.run(_run(agent, query, agents_dir, session, as_json))
    raise typer.Exit(status)


async def _run(agent: str, query: str, agents_dir: Path | None, session: str, as_json: bool) -> int:
    from astromesh.runs.events import RunEvent
    from astromesh.runs.views import run_response

    async def show(event: RunEvent) -> None:
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
            # --json prints only the finished run: no sink, so no streamed model calls.
            result = await runtime.run(
                agent, query, session_id=session, on_event=None if as_json else show
            )
        except AstromeshError as exc:
            err.print(f"[red]error:[/] {exc.message}")
            return 2
    if as_json:
        typer.echo(json.dumps(run_response(result), ensure_ascii=False))
    else:
        sys.stdout.write("\n")
        usage = result.usage
        err.print(
            f"[dim]{result.status.value} · run {result.id} · session {session} · {usage.model} · "
            f"{usage.tokens_in} in / {usage.tokens_out} out · ${usage.cost:.6f}[/]"
        )
        if result.error:
            err.print(f"[red]error:[/] {result.error}")
    return 0 if result.status.value == "succeeded" else 1


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    agents_dir: AgentsOption = None,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart when Python or YAML files change")
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve OPEN (no API key exists) on a non-loopback --host anyway: anyone who"
            " can reach it is admin of every tenant",
        ),
    ] = False,
) -> None:
    """Serve the /v1 REST API, SSE and the WebSocket on one port (docs at /docs, Prometheus
    metrics at /metrics).

    Without any API key (and ASTROMESH_AUTH not 'required') the server is open and every
    caller is its admin, so it listens on loopback only unless --insecure is given."""
    import os

    try:
        import uvicorn
    except ImportError:
        err.print("[red]error:[/] the local server needs the 'server' extra")
        err.print("        pip install 'astromesh[server]'")
        raise typer.Exit(2) from None

    from astromesh.channels.settings import ServerSettings

    folder = agents_dir or default_agents_dir()
    if not folder.exists():
        err.print(f"[red]error:[/] {folder}: no such file or folder")
        raise typer.Exit(2)
    try:
        settings = ServerSettings.from_env()
    except AstromeshError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    if not is_loopback(host) and settings.auth != "required":
        _refuse_open_on_network(host, folder, insecure=insecure)
    # The app factory reads the folder from the environment, which --reload's worker
    # process inherits.
    os.environ["ASTROMESH_AGENTS_DIR"] = str(folder.resolve())
    err.print(
        f"Astromesh {__version__} on http://{host}:{port}  (API docs: /docs, agents: {folder})"
    )
    uvicorn.run(
        "astromesh.channels.app:create_dev_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        reload_dirs=[str(folder.resolve()), str(Path(__file__).resolve().parent)]
        if reload
        else None,
        reload_includes=["*.py", "*.yaml", "*.yml"] if reload else None,
        log_level="info",
        ws_max_size=settings.max_body_bytes,  # one limit for every message, HTTP or WebSocket
    )


def _refuse_open_on_network(host: str, folder: Path, *, insecure: bool) -> None:
    """Stop a keyless (open) server from listening beyond this machine, unless ``insecure``.

    Keys are looked up in the store the server will use; a key created later closes the
    server at once, but until then every caller would be admin of every tenant.
    """

    async def has_active(keys: KeyStore) -> bool:
        return await keys.has_active()

    if _with_keys(folder, has_active):
        return
    if not insecure:
        err.print(
            f"[red]error:[/] refusing to serve OPEN on {host}: no API key exists, so anyone who"
            " can reach this address would be admin of every tenant. Listen on 127.0.0.1"
            " (the default), create a key first ('astromesh keys create --tenant T --agents"
            ' "*" --role admin\') or set ASTROMESH_AUTH=required; --insecure serves open'
            " anyway."
        )
        raise typer.Exit(2)
    err.print(
        f"[bold red]WARNING: serving OPEN on {host} (--insecure): no API key exists and every"
        " caller that can reach this address is admin of every tenant: it can register,"
        " change, pause and delete agents and read every run.[/]"
    )


StateFolderOption = Annotated[
    Path | None,
    typer.Option(
        "--agents-dir",
        help="Folder whose RuntimeConfig says where state is kept (as the server reads it)"
        " [default: $ASTROMESH_AGENTS_DIR or agents/]",
    ),
]

keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(local_app, name="local")
app.add_typer(new_app, name="new")
register_rag(app)
register_cost(app)
register_traces(app)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to")],
    agents_list: Annotated[
        str, typer.Option("--agents", help="Comma-separated agent names, or '*' for all")
    ],
    label: Annotated[str, typer.Option("--label", help="A note to recognise the key by")] = "",
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="admin (every tenant, file agents' status), developer (register, change,"
            " pause and delete the tenant's agents) or user (run and read only)",
        ),
    ] = "developer",
    agents_dir: StateFolderOption = None,
) -> None:
    """Create a key; it is printed once on stdout and only its hash is kept."""
    from astromesh.auth import IssuedKey

    async def create(keys: KeyStore) -> IssuedKey:
        return await keys.issue(tenant, agents_list.split(","), label=label, role=role)

    issued = _with_keys(agents_dir, create)
    record = issued.record
    err.print(
        f"created {record.role.value} key {record.key_id} for tenant {record.tenant!r}, agents "
        f"{', '.join(record.agents)}; it is shown only now:"
    )
    typer.echo(issued.plaintext)


@keys_app.command("list")
def keys_list(agents_dir: StateFolderOption = None) -> None:
    """List keys: id, tenant, agents, created, revoked, label, role (never the secret)."""

    async def read(keys: KeyStore) -> list[ApiKey]:
        return await keys.list()

    for key in _with_keys(agents_dir, read):
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "active"
        typer.echo(
            f"{key.key_id}\t{key.tenant}\t{','.join(key.agents)}\t"
            f"{key.created_at.isoformat(timespec='seconds')}\t{revoked}\t{key.label}\t"
            f"{key.role.value}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by 'keys list'")],
    agents_dir: StateFolderOption = None,
) -> None:
    """Revoke a key at once; requests with it get 401."""

    async def revoke(keys: KeyStore) -> bool:
        return await keys.revoke(key_id)

    if not _with_keys(agents_dir, revoke):
        err.print(f"[red]error:[/] no active key {key_id!r}")
        raise typer.Exit(1)
    err.print(f"revoked {key_id}")


def _with_keys(agents_dir: Path | None, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Run ``action`` on the key store of the state the server uses (same settings)."""
    from astromesh.channels.control_plane import open_control_plane

    async def main() -> T:
        async with AgentRuntime(agents_dir) as runtime:
            control = await open_control_plane(runtime)
            try:
                return await action(control.keys)
            finally:
                await control.aclose()

    try:
        return asyncio.run(main())
    except AstromeshError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None


def _report_issues(runtime: AgentRuntime) -> None:
    for issue in runtime.issues:
        err.print(f"[yellow]warning:[/] skipped: {issue}")


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
