"""``astromesh cost``: what a tenant's runs spent, as a table, from a running server's
``GET /v1/usage`` (``astromesh dev`` or the AWS API), reached as every client command
reaches it (:mod:`astromesh.cli_client`: ``--url`` / ``$ASTROMESH_URL``, default
``http://127.0.0.1:8000``; ``--api-key`` / ``$ASTROMESH_API_KEY``, none for an open local
server).

Registered on the main command by ``cli.py`` (:func:`register`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from astromesh.cli_client import DEFAULT_URL, KeyOption, UrlOption, api_get


def cost(
    group_by: Annotated[
        str, typer.Option("--group-by", help="day, agent or model: one row per group")
    ] = "day",
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs")] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Admin keys: another tenant's spending")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="Runs started on or after (YYYY-MM-DD or ISO datetime)"),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--to", help="Runs started before (a date: that day included) [now]"),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /v1/usage's JSON")] = False,
) -> None:
    """Tokens, USD and runs by day, agent or model (child runs and side calls included)."""
    params = {
        "group_by": group_by,
        "agent": agent,
        "tenant": tenant,
        "from": since,
        "to": until,
    }
    body = api_get(url, "/v1/usage", {k: v for k, v in params.items() if v}, api_key)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    Console(highlight=False).print(usage_table(body))


def usage_table(body: dict[str, Any]) -> Table:
    """One row per group and a total row, as ``GET /v1/usage`` answered them."""
    name = body.get("group_by") or "group"
    window = f"{body['from'][:10]} .. {body['to'][:10]}"
    title = f"Usage of tenant {body['tenant']}" + (
        f", agent {body['agent']}" if body["agent"] else ""
    )
    table = Table(title=f"{title} ({window})", show_footer=True)
    total = body["total"]
    table.add_column(name, footer="total")
    for column, key in (
        ("runs", "runs"),
        ("calls", "calls"),
        ("tokens in", "tokens_in"),
        ("tokens out", "tokens_out"),
    ):
        table.add_column(column, justify="right", footer=str(total[key]))
    table.add_column("USD", justify="right", footer=f"{total['cost_usd']:.6f}")
    for group in body["groups"]:
        table.add_row(
            str(group[name]),
            str(group["runs"]),
            str(group["calls"]),
            str(group["tokens_in"]),
            str(group["tokens_out"]),
            f"{group['cost_usd']:.6f}",
        )
    return table


def register(app: typer.Typer) -> None:
    """Add ``cost`` to the ``astromesh`` command."""
    app.command("cost")(cost)


__all__ = ["cost", "register", "usage_table"]
