"""``astromesh cost``: what a tenant's runs spent, as a table, from a running server's
``GET /v1/usage`` (``astromesh dev`` or the AWS API).

Over HTTP rather than from a local store on purpose: the ledger a deployment keeps is where
its runs ended (PostgreSQL behind Lambda, the local server's SQLite), and the server scopes
what a key may read to its tenant, which a local read could not. The server is
``--url`` (``$ASTROMESH_URL``, default ``http://127.0.0.1:8000``) and the key ``--api-key``
(``$ASTROMESH_API_KEY``; none for an open local server).

Registered on the main command by ``cli.py`` (:func:`register`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, highlight=False, soft_wrap=True)

URL_ENV = "ASTROMESH_URL"
KEY_ENV = "ASTROMESH_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 30.0


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
    url: Annotated[
        str, typer.Option("--url", envvar=URL_ENV, help="The server's base URL")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar=KEY_ENV, help="API key", show_default=False)
    ] = None,
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


def api_get(url: str, path: str, params: dict[str, str], api_key: str | None) -> dict[str, Any]:
    """The JSON body of ``GET url+path``; exit 1 with the server's message otherwise."""
    headers = {"x-api-key": api_key} if api_key else {}
    try:
        answer = httpx.get(
            url.rstrip("/") + path, params=params, headers=headers, timeout=TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/] no answer from {url} ({exc}); is 'astromesh dev' running?")
        raise typer.Exit(1) from None
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        err.print(f"[red]error:[/] {answer.status_code} {detail}")
        raise typer.Exit(1)
    body: dict[str, Any] = answer.json()
    return body


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


__all__ = ["api_get", "cost", "register", "usage_table"]
