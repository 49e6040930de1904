"""Upstream Astromesh's documents, read here: the field catalog and the normalisation pass.

See :mod:`.catalog` for the policy ("tolerant like upstream, strict on typos").
"""

from astromesh.config.compat.catalog import (
    GLYPH_MESSAGE,
    IGNORED_KINDS,
    UPSTREAM_FIELDS,
    UpstreamField,
)
from astromesh.config.compat.normalize import Normalized, Note, normalize
from astromesh.config.compat.providers import PROVIDER_ALIASES, apply_provider_alias

__all__ = [
    "GLYPH_MESSAGE",
    "IGNORED_KINDS",
    "PROVIDER_ALIASES",
    "UPSTREAM_FIELDS",
    "Normalized",
    "Note",
    "UpstreamField",
    "apply_provider_alias",
    "normalize",
]
