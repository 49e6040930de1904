"""``${VAR}`` / ``${VAR:-default}`` substitution in string values.

It runs on each scalar after YAML parsing (not on the raw text), so a value can never break the
YAML structure and every error keeps the line of the value it came from. ``$${VAR}`` is the
escape for a literal ``${VAR}`` (e.g. a shell snippet in a prompt).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from astromesh.config.constants import ENV_VAR_RE

# ``$${...}`` (escape) or ``${...}``; the body stops at the first ``}``.
_REFERENCE = re.compile(r"(\$?)\$\{([^}]*)\}")


class InterpolationError(ValueError):
    """A reference cannot be resolved; ``variable`` names it for the message."""

    def __init__(self, message: str, variable: str) -> None:
        super().__init__(message)
        self.message = message
        self.variable = variable


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Return ``value`` with every reference replaced from ``env``.

    ``${VAR:-default}`` uses the default when ``VAR`` is unset *or empty*, as the shell does,
    so an exported-but-blank variable does not silently become an empty endpoint.
    """
    if "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        escaped, body = match.group(1), match.group(2)
        if escaped:
            return "${" + body + "}"
        name, has_default, default = body.partition(":-")
        if not ENV_VAR_RE.match(name):
            raise InterpolationError(
                f"malformed reference '${{{body}}}': expected ${{NAME}} or ${{NAME:-default}}"
                " (write $${...} for a literal)",
                body,
            )
        found = env.get(name)
        if found:
            return found
        if has_default:
            return default
        if found is not None:  # set but empty, and no default: an empty string is intended
            return found
        raise InterpolationError(
            f"environment variable '{name}' is not set"
            f" (set it, or write ${{{name}:-default}} to give a default)",
            name,
        )

    return _REFERENCE.sub(replace, value)
