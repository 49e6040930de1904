"""Ingesting files and folders: read txt, md, html (and pdf when ``pypdf`` is installed),
then index each through a :class:`RAGPipeline`, idempotently.

A file is identified by its path as given (``doc_id = "file:<path>"``; the Lambda uses
``s3://bucket/key``), so re-ingesting an unchanged file writes nothing and a changed file
replaces its old chunks. One unreadable file is reported and the others go on.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from astromesh.errors import AstromeshError
from astromesh.rag.pipeline import IngestResult, RAGPipeline

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

FileStatus = Literal["indexed", "replaced", "unchanged", "empty", "skipped", "failed"]


class UnsupportedDocument(AstromeshError):
    """A file this build cannot read (unknown type, or pdf without ``pypdf``)."""

    code = "unsupported_document"
    status = 415


@dataclass(slots=True)
class FileResult:
    """One file's outcome in an ingestion run."""

    path: str
    status: FileStatus
    chunks: int = 0
    detail: str | None = None


@dataclass(slots=True)
class IngestReport:
    """Every file's outcome, in order, and the counts a summary prints."""

    files: list[FileResult] = field(default_factory=list)

    def count(self, *statuses: FileStatus) -> int:
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def written(self) -> int:
        return self.count("indexed", "replaced")

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("indexed", "replaced"))

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0


Progress = Callable[[int, int, FileResult], None]
"""Called after each file with (files done, files in total, that file's result)."""


# -- reading --------------------------------------------------------------------------------


class _TextFromHTML(HTMLParser):
    """Visible text of an HTML page: scripts and styles dropped, blocks on their own lines,
    headings written as markdown headings so the markdown chunker can follow them."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset(
        {"p", "div", "section", "article", "li", "ul", "ol", "tr", "table", "br", "pre",
         "blockquote", "header", "footer", "main", "nav", "aside", "title", "dd", "dt"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._title_seen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"} or tag in self._BLOCK:
            self.parts.append("\n\n" if tag in {"p", "h1", "h2", "h3", "h4", "h5", "h6"} else "\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self.parts).splitlines()]
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip()


def html_to_text(html: str) -> str:
    """The readable text of an HTML document (stdlib parser; no dependency)."""
    parser = _TextFromHTML()
    parser.feed(html)
    parser.close()
    return parser.text()


def pdf_to_text(path: Path) -> str:
    """The text of a PDF's pages, with ``pypdf``.

    Raises:
        UnsupportedDocument: ``pypdf`` is not installed.
    """
    if importlib.util.find_spec("pypdf") is None:
        raise UnsupportedDocument(f"{path}: reading pdf needs pypdf (pip install pypdf)")
    from pypdf import PdfReader

    return "\n\n".join((page.extract_text() or "").strip() for page in PdfReader(path).pages)


def read_document(path: str | Path) -> str:
    """The text of a txt/md/html/pdf file (UTF-8, undecodable bytes replaced).

    Raises:
        UnsupportedDocument: another file type, or pdf without ``pypdf``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return path.read_text(encoding="utf-8", errors="replace")
    if suffix in HTML_SUFFIXES:
        return html_to_text(path.read_text(encoding="utf-8", errors="replace"))
    if suffix in PDF_SUFFIXES:
        return pdf_to_text(path)
    raise UnsupportedDocument(
        f"{path}: unsupported file type {suffix or '(none)'}; "
        f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
    )


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files to ingest: each file given, and every supported file under each folder (sorted,
    hidden files and folders skipped). A file named explicitly is kept even if unsupported,
    so the report says why it was skipped."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            candidates = [path]
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                found.append(candidate)
    return found


# -- ingesting ------------------------------------------------------------------------------


async def ingest_file(
    pipeline: RAGPipeline,
    path: str | Path,
    *,
    source: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> IngestResult:
    """Read and index one file as document ``file:<source>`` (``source`` defaults to the path)."""
    path = Path(path)
    source = source or path.as_posix()
    text = read_document(path)
    return await pipeline.ingest_text(
        text, doc_id=f"file:{source}", source=source, metadata=metadata
    )


async def ingest_paths(
    pipeline: RAGPipeline,
    paths: Iterable[str | Path],
    *,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest files and folders; every file gets a :class:`FileResult`, failures included."""
    files = discover(paths)
    report = IngestReport()
    for done, path in enumerate(files, start=1):
        try:
            if not path.exists():
                result = FileResult(str(path), "failed", detail="no such file or folder")
            else:
                outcome = await ingest_file(pipeline, path)
                result = FileResult(str(path), outcome.status, len(outcome.chunks))
        except UnsupportedDocument as exc:
            result = FileResult(str(path), "skipped", detail=exc.message)
        except (OSError, UnicodeError, AstromeshError) as exc:
            result = FileResult(str(path), "failed", detail=str(exc))
        report.files.append(result)
        if progress is not None:
            progress(done, len(files), result)
    return report
