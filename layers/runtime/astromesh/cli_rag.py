"""``astromesh ingest PIPELINE PATH... [--agents DIR]``: index files and folders into a RAG
pipeline with a progress bar. Idempotent: unchanged files are reported and not re-embedded.

Registered on the main command by ``cli.py`` (``app.command("ingest")(ingest)``); also
runnable alone as ``python -m astromesh.cli_rag``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from astromesh.errors import AstromeshError

err = Console(stderr=True, highlight=False, soft_wrap=True)


def ingest(
    pipeline: Annotated[str, typer.Argument(help="RAGPipeline name")],
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (txt, md, html, pdf)")],
    agents_dir: Annotated[
        Path | None,
        typer.Option(
            "--agents",
            help="Folder of astromesh/v1 documents [default: $ASTROMESH_AGENTS_DIR or agents/]",
        ),
    ] = None,
) -> None:
    """Ingest files and folders into a RAG pipeline (unchanged files are skipped)."""
    raise typer.Exit(asyncio.run(_ingest(pipeline, paths, agents_dir)))


async def _ingest(name: str, paths: list[Path], agents_dir: Path | None) -> int:
    from astromesh.config import load_path
    from astromesh.rag import PipelineRegistry, ingest_paths
    from astromesh.rag.ingest import FileResult

    folder = agents_dir or Path(os.environ.get("ASTROMESH_AGENTS_DIR", "agents"))
    config = load_path(folder)
    registry = PipelineRegistry(config.rag_pipelines, env=os.environ)
    try:
        pipeline = await registry.get(name)
    except AstromeshError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        await registry.close()
        return 2
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(f"ingesting into {name}", total=None)

            def advance(done: int, total: int, result: FileResult) -> None:
                bar.update(task, completed=done, total=total)
                if result.status in ("failed", "skipped"):
                    bar.console.print(f"[yellow]{result.status}:[/] {result.path}: {result.detail}")

            report = await ingest_paths(pipeline, paths, progress=advance)
    finally:
        await registry.close()
    err.print(
        f"{len(report.files)} file(s): {report.count('indexed')} indexed, "
        f"{report.count('replaced')} replaced, {report.count('unchanged')} unchanged, "
        f"{report.count('skipped')} skipped, {report.count('failed')} failed; "
        f"{report.chunks_written} chunk(s) written"
    )
    return 0 if report.ok else 1


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the ``astromesh`` command."""
    app.command("ingest")(ingest)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
