"""What the loader reports: one ``ConfigIssue`` per problem, with file, line and field path.

Also the small helpers every model validator uses to raise errors the loader can place
precisely (``config_error``) and to phrase "did you mean" suggestions the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from difflib import get_close_matches
from typing import Any

from pydantic_core import PydanticCustomError

from astromesh.config.yaml_source import FieldPath
from astromesh.text_boundary import repair_value

# The error type our validators raise; the loader reads ``field``/``suggestion`` from its ctx.
CONFIG_ERROR_TYPE = "astromesh_config"

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in one file, phrased for the person who wrote the file.

    ``message`` is complete on its own (it already contains the "did you mean" hint);
    ``suggestion`` repeats the suggested value alone, for tools that want to offer a fix.
    """

    file: str
    line: int | None
    column: int | None
    field: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for REST error bodies (valid text even when a file name holds
        bytes the file system could not decode)."""
        return repair_value(asdict(self))


def suggest(word: object, choices: Iterable[str]) -> str | None:
    """The closest known word to ``word``, if one is close enough to be a likely typo."""
    if not isinstance(word, str) or not word:
        return None
    options = list(dict.fromkeys(choices))
    matches = get_close_matches(word, options, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {option.lower(): option for option in options}
    return lowered.get(word.lower())


def with_suggestion(message: str, suggestion: str | None) -> str:
    """Append the standard hint; every message ends with it the same way."""
    return f"{message} (did you mean '{suggestion}'?)" if suggestion else message


def one_of(choices: Sequence[str]) -> str:
    """``a, b or c`` for messages."""
    items = list(choices)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def format_path(path: FieldPath) -> str:
    """``spec.tools[1].handler``; keys that are not plain words are quoted: ``x["a.b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def config_error(
    message: str, *, field: str | None = None, suggestion: str | None = None
) -> PydanticCustomError:
    """An error for a model validator to raise.

    ``field`` is a dotted path relative to the model being validated (``tools.1.name``) so the
    message lands on the offending line even though a model validator reports at the model's
    own location. ``message`` must already contain the suggestion (use ``with_suggestion``).
    """
    return PydanticCustomError(
        CONFIG_ERROR_TYPE,
        "{message}",
        {"message": message, "field": field or "", "suggestion": suggestion or ""},
    )
