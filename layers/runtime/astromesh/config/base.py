"""What every ``astromesh/v1`` model and document shares.

``ConfigModel`` forbids unknown fields (a typo must be an error, never silently ignored);
``ConfigDocument`` adds the envelope (apiVersion, kind, metadata) and the ``SourceRef`` that
lets later layers point back at the file a document came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from astromesh.config.constants import API_VERSION, API_VERSIONS, NAME_RE
from astromesh.config.issues import (
    ConfigIssue,
    config_error,
    one_of,
    suggest,
    with_suggestion,
)
from astromesh.config.limits import MAX_NAMED_ITEMS, check_name_length


class ConfigModel(BaseModel):
    """Base of every config model: unknown fields are errors; numbers are accepted as text.

    ``defer_build``: a model's validator is built when it first validates (or is used in a
    schema), not when its module is imported, so the kinds and fields a deployment never uses
    cost nothing at a cold start (docs/performance.md, "Lazy imports").
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, defer_build=True)


@dataclass(frozen=True, slots=True)
class ShapedAs:
    """Annotation marker: a free-form field whose content is validated as ``shape``.

    The error mapper follows it to find field names for "did you mean" suggestions.
    """

    shape: Any


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a loaded document starts: the file and the 1-based line of its first key."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Metadata(ConfigModel):
    """``metadata``: the document's identity. ``name`` is used in URLs and storage keys."""

    name: str
    version: str = "0.1.0"
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    """Upstream's place for a one-line description (ours is ``spec.identity.description``,
    which wins where both are given)."""

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        check_name_length(value, what="metadata.name")
        if not NAME_RE.match(value):
            raise config_error(
                f"'{value}' is not a valid name: use lowercase letters, digits, '-' and '_',"
                " starting and ending with a letter or digit (e.g. 'sales-qualifier')"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _few_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_NAMED_ITEMS:
            raise config_error(f"too many labels: {len(value)}, the limit is {MAX_NAMED_ITEMS}")
        return value


class ConfigDocument(ConfigModel):
    """The envelope shared by all kinds; subclasses narrow ``kind`` and add ``spec``."""

    api_version: str = Field(validation_alias=AliasChoices("apiVersion", "api_version"))
    kind: str
    metadata: Metadata

    _source: SourceRef | None = PrivateAttr(default=None)
    _warnings: list[ConfigIssue] = PrivateAttr(default_factory=list)

    @field_validator("api_version")
    @classmethod
    def _known_api_version(cls, value: str) -> str:
        if value not in API_VERSIONS:
            hint = suggest(value, API_VERSIONS)
            raise config_error(
                with_suggestion(
                    f"unsupported apiVersion '{value}'; expected {one_of(API_VERSIONS)}", hint
                ),
                suggestion=hint,
            )
        # Upstream's legacy spelling means the same schema; store one spelling.
        return API_VERSION

    @property
    def name(self) -> str:
        """The document's ``metadata.name``."""
        return self.metadata.name

    @property
    def source(self) -> SourceRef | None:
        """Where the document was loaded from (``None`` when built in code)."""
        return self._source

    @property
    def warnings(self) -> list[ConfigIssue]:
        """Upstream fields of this document that load but mean nothing here (see
        :mod:`astromesh.config.compat`); empty when built in code."""
        return self._warnings

    def with_source(self, source: SourceRef) -> None:
        """Record the origin; the loader calls this, it is not part of the serialized form."""
        self._source = source

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict in canonical field names (``timeout_seconds``, not ``timeout``).

        The envelope key stays ``apiVersion`` as upstream writes it, so the result is itself a
        valid document that ``load_text`` accepts again.
        """
        data = self.model_dump(mode="json", by_alias=False, exclude_none=True)
        return {"apiVersion": data.pop("api_version"), **data}
