"""``astromesh traces`` and ``astromesh trace ID``: the traces kept with a server's runs, as a
table and as a tree in the terminal (durations, tokens, cost), from ``GET /v1/traces``.

Over HTTP like ``astromesh cost`` (:mod:`astromesh.cli_client`, whose ``--url`` /
``--api-key`` settings these share): spans are kept with runs wherever the deployment's run
store is, and the server scopes what a key may read to its tenant.

Registered on the main command by ``cli.py`` (:func:`register`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from astromesh.cli_client import DEFAULT_URL, KeyOption, UrlOption, api_get


def traces(
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="At most this many")] = 20,
    session: Annotated[str | None, typer.Option("--session", help="Only this session")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="succeeded, failed, running...")
    ] = None,
    since: Annotated[str | None, typer.Option("--from", help="Started on or after")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Started before")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /v1/traces' JSON")] = False,
) -> None:
    """Recent runs' traces, newest first: trace id, agent, start, duration, status, cost."""
    params = {
        "agent": agent,
        "limit": str(limit),
        "session_id": session,
        "status": status,
        "from": since,
        "to": until,
    }
    body = api_get(url, "/v1/traces", {k: v for k, v in params.items() if v}, api_key)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    Console(highlight=False).print(traces_table(body["traces"]))


def trace(
    trace_id: Annotated[str, typer.Argument(help="A trace id, or a run id")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace's JSON")] = False,
) -> None:
    """One trace as a tree of spans: durations, tokens, cost, errors."""
    body = api_get(url, f"/v1/traces/{trace_id}", {}, api_key)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    Console(highlight=False).print(trace_tree(body))


def traces_table(items: list[dict[str, Any]]) -> Table | str:
    """One row per trace (or a line saying there is none)."""
    if not items:
        return "No traces found."
    table = Table(title="Traces")
    for column in ("trace id", "run id", "agent", "started at", "duration", "status"):
        table.add_column(column, justify="right" if column == "duration" else "left")
    table.add_column("tokens in/out", justify="right")
    table.add_column("USD", justify="right")
    for item in items:
        duration = item.get("duration_ms")
        table.add_row(
            item["trace_id"],
            item["run_id"],
            item["agent"],
            item["started_at"][:19].replace("T", " "),
            f"{duration:.0f} ms" if duration is not None else "-",
            item["run_status"],
            f"{item['tokens_in']}/{item['tokens_out']}",
            f"{item['cost']:.6f}",
        )
    return table


def trace_tree(body: dict[str, Any]) -> Tree:
    """The spans nested as the server sent them, each with its duration and, where the span
    has them, tokens, cost and the error."""
    tree = Tree(
        f"[bold]trace {body['trace_id']}[/] · {body['agent']} · {body['run_status']} · "
        f"{body['tokens_in']} in / {body['tokens_out']} out · ${body['cost']:.6f}"
        + (f" · [yellow]{body['dropped_spans']} spans not kept[/]" if body["dropped_spans"] else "")
    )
    for span in body["spans"]:
        _add(tree, span)
    return tree


def _add(parent: Tree, span: dict[str, Any]) -> None:
    attributes = span["attributes"]
    label = f"{span['name']} [dim]{span['duration_ms']:.1f} ms[/]"
    tokens_in = attributes.get("gen_ai.usage.input_tokens")
    tokens_out = attributes.get("gen_ai.usage.output_tokens")
    if tokens_in is not None or tokens_out is not None:
        label += f" · {tokens_in or 0} in / {tokens_out or 0} out"
    if attributes.get("astromesh.cost.usd"):
        label += f" · ${attributes['astromesh.cost.usd']:.6f}"
    if span["status"] == "error":
        label += f" [red]✗ {attributes.get('error.type', 'error')}[/]"
    branch = parent.add(label)
    for child in span["children"]:
        _add(branch, child)


def register(app: typer.Typer) -> None:
    """Add ``traces`` and ``trace`` to the main command."""
    app.command("traces")(traces)
    app.command("trace")(trace)
