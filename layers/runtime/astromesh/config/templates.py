"""Load-time checks of the Jinja2 templates a document carries (prompts, stages, chains).

A template is compiled in the same bounded sandbox runs use and trial-rendered once, so a typo
or a template bomb (``{{ 9**(9**8) }}``, nested loops over ``range``) is a validation issue on
its own line of YAML, not a hang at the first run. ``jinja2`` is imported lazily: reading a
config does not otherwise need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from astromesh.config.issues import config_error

__all__ = ["check_template", "document_templates", "template_problem"]


@contextmanager
def document_templates() -> Iterator[None]:
    """Validate one document's templates inside this: their trial renders share one budget
    (see ``astromesh.prompts.sandbox.DOCUMENT_BUDGET_SECONDS``)."""
    from astromesh.prompts.sandbox import shared_budget

    with shared_budget():
        yield


def template_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable template, or ``None``."""
    from astromesh.prompts.render import template_problem as problem

    return problem(text)


def check_template(text: str, *, field: str | None = None) -> str:
    """Return ``text`` or raise the config error for its problem."""
    problem = template_problem(text)
    if problem is not None:
        raise config_error(problem, field=field)
    return text
