"""Regular expressions that documents name, on an engine whose time is linear in the text.

A document can name regexes in several places (content_filter ``blocked_patterns``,
prompt_injection ``extra_patterns``, ``pattern`` / ``patternProperties`` in tool parameter
schemas), and they are matched against text a caller or a model controls. Python's ``re``
backtracks: ``(a+)+$`` against 30 ``a`` and a ``b`` blocks the event loop for minutes, and
every other request with it. RE2 (``google-re2``) matches in linear time, so:

- a document registered through the API must use patterns RE2 accepts (no backreferences,
  no lookarounds); the registration check reports any other with its field and line;
- every document pattern RE2 accepts runs on RE2, whoever wrote it; an operator's file may
  still use Python-only syntax, which then runs on ``re`` (the operator's own risk).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol


class Pattern(Protocol):
    """What callers use of a compiled pattern (``re.Pattern`` and RE2's have it)."""

    pattern: str

    def search(self, text: str, /) -> Any: ...

    def finditer(self, text: str, /) -> Any: ...


@functools.cache
def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported by us, not on stderr
    return options


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Pattern:
    """``pattern`` compiled with RE2 when RE2 accepts it, else with ``re``.

    Raises:
        re.error: neither engine accepts it (validation reports that earlier).
    """
    if re2_problem(pattern) is None:
        import re2

        compiled: Pattern = re2.compile(pattern, _options())
        return compiled
    return re.compile(pattern)


@functools.lru_cache(maxsize=1024)
def re2_problem(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern`` (``None`` when it accepts it)."""
    import re2

    try:
        re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return str(detail)
    return None


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """JSON Schema's ``pattern`` keyword on :func:`compile_pattern` instead of ``re``."""
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def schema_validator_class() -> Any:
    """The Draft 2020-12 validator whose ``pattern`` runs on RE2 where RE2 accepts it.

    (``patternProperties`` keeps ``re``: registered documents may not use it, see
    :mod:`astromesh.security.registration`.)
    """
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _pattern_keyword})
