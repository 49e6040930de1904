"""``astromesh models``: list the model artifacts of the registry, fetch and verify one.

Mounted on the main command by ``app.add_typer(models_app, name="models")`` in ``cli.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from astromesh.errors import AstromeshError

if TYPE_CHECKING:
    from astromesh.models.artifacts import ModelRegistry

app = typer.Typer(
    name="models",
    help="Model artifacts (ONNX files) of the registry: list them, fetch and verify one.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ManifestOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--manifest",
        "-m",
        help="A models.yaml manifest (repeatable) [default: $ASTROMESH_MODEL_REGISTRY]",
    ),
]


def _registry(manifests: list[Path] | None) -> ModelRegistry:
    """Imported on use: ``astromesh --help`` must not pay for YAML manifests or boto3."""
    from astromesh.models.artifacts import ModelRegistry

    if manifests:
        return ModelRegistry(manifests)
    return ModelRegistry.from_env()


@app.callback()
def models(ctx: typer.Context, manifest: ManifestOption = None) -> None:
    """List every artifact: name, version, task, state (ready, remote, missing...), where."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = manifest
        return
    try:
        registry = _registry(manifest)
        artifacts = registry.artifacts()
        if not artifacts:
            typer.echo("no model artifacts registered")
            return
        for artifact in artifacts:
            status = registry.status(artifact)
            typer.echo(
                f"{artifact.name}\t{artifact.version}\t{artifact.spec.task}\t{status.state}\t"
                f"{status.detail}"
            )
    except AstromeshError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None


@app.command()
def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name or name@version")],
) -> None:
    """Fetch the artifact if remote and check its sha256; print its local path."""
    try:
        registry = _registry(ctx.obj)
        artifact = registry.get(ref)
        path = registry.local_path(artifact)
        tokenizer = registry.tokenizer_path(artifact)
    except AstromeshError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
    typer.echo(f"ok: {artifact.ref} {path}" + (f" (tokenizer {tokenizer})" if tokenizer else ""))


__all__ = ["app"]
