"""Sandboxed Jinja2 prompt rendering."""

from astromesh.prompts.render import PromptTemplate, base_variables

__all__ = ["PromptTemplate", "base_variables"]
