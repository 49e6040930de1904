"""Where in its file an agent that validates but cannot be built went wrong.

A build failure (a webhook URL the SSRF guard refuses, a python tool that does not import)
is a :class:`~astromesh.errors.ConfigurationError` that may know its field
(``spec.tools.0``). :func:`build_issue` turns it into the same :class:`ConfigIssue` a
validation error is (file, line, column, field, message), so ``astromesh validate``, the
server's log and ``GET /v1/agents`` point at the line to fix.
"""

from __future__ import annotations

from pathlib import Path

from astromesh.config.agent import AgentDocument
from astromesh.config.issues import ConfigIssue
from astromesh.config.yaml_source import Position, YamlDocument, parse_documents
from astromesh.errors import ConfigurationError


def build_issue(document: AgentDocument, exc: ConfigurationError) -> ConfigIssue:
    """``exc`` as an issue of ``document``'s file, on its field's line when known."""
    source = document.source
    file = source.file if source is not None else f"<agent {document.name}>"
    field = exc.field or ""
    position = _position(source.file, source.line, field) if source and field else None
    if position is None and source is not None:
        line, column = source.line, None
    else:
        line, column = (position.line, position.column) if position else (None, None)
    reason = getattr(exc, "reason", None) or exc.message
    return ConfigIssue(file, line, column, field, f"cannot run here: {reason}")


def _position(file: str, first_line: int, field: str) -> Position | None:
    """Where ``field`` sits in the document of ``file`` that starts at ``first_line``."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    parsed = parse_documents(text, {})
    if not isinstance(parsed, list):
        return None
    candidates = [d for d in parsed if d.start.line <= first_line]
    document: YamlDocument | None = (
        max(candidates, key=lambda d: d.start.line) if candidates else None
    )
    if document is None:
        return None
    path = tuple(int(part) if part.isdigit() else part for part in field.split("."))
    return document.position_of(path)
