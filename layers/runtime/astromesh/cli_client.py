"""How the client commands (``astromesh cost``, ``traces``, ``trace``) reach a running server:
its base URL and API key as options (or environment variables), and one ``GET`` that turns
the server's refusals into a message and exit status 1.

Over HTTP rather than reading a store: what these commands show lives where the deployment's
runs ended (PostgreSQL behind Lambda, the local server's SQLite), and the server scopes what a
key may read to its tenant, which a local read could not.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)

URL_ENV = "ASTROMESH_URL"
KEY_ENV = "ASTROMESH_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 30.0

UrlOption = Annotated[str, typer.Option("--url", envvar=URL_ENV, help="The server's base URL")]
KeyOption = Annotated[
    str | None, typer.Option("--api-key", envvar=KEY_ENV, help="API key", show_default=False)
]


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


__all__ = ["DEFAULT_URL", "KEY_ENV", "URL_ENV", "KeyOption", "UrlOption", "api_get"]
