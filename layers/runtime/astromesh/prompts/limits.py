"""The sandbox's refusal, in a module of its own: code that only catches it (the prompt
template, the REST layer) does not import Jinja2 with it (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from typing import Final

from astromesh.errors import ConfigurationError

TEMPLATE_LIMIT_CODE: Final = "template_limit"


class TemplateLimitError(ConfigurationError):
    """A template was refused or stopped because it exceeded one of this module's limits.

    A ``ConfigurationError`` so registration turns it into a 422 and a run fails with a clear
    code, like any other unusable agent document. ``field`` is the document field of the
    template (``spec.prompts.system``) when the caller knows it.
    """

    code = TEMPLATE_LIMIT_CODE
    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.reason = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def at(self, field: str) -> TemplateLimitError:
        """The same refusal, reported under ``field`` (when it has none yet)."""
        return self if self.field else TemplateLimitError(self.reason, field=field)
