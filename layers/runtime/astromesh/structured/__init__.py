"""Structured output: ``spec.output_schema`` turns the final answer into validated JSON.

- :mod:`.schema`: the schema a document declares, normalised (upstream's shorthand) and
  bounded at load time (size, depth, local ``$ref`` only, a valid Draft 2020-12 schema).
- :mod:`.answer`: the instructions the model gets, and the JSON found in an answer checked
  against the schema.
- :mod:`.settle`: the check of a final answer inside the ``step`` stage (both executors), with
  at most one repair call; ``finalize`` parses the screened answer into ``run.data``.
"""

from astromesh.structured.answer import (
    OUTPUT_INVALID,
    extract_json,
    instructions,
    response_format,
    shape,
    validation_problems,
)
from astromesh.structured.schema import (
    MAX_SCHEMA_CHARS,
    MAX_SCHEMA_DEPTH,
    SchemaError,
    check_output_schema,
    normalize_output_schema,
)

__all__ = [
    "MAX_SCHEMA_CHARS",
    "MAX_SCHEMA_DEPTH",
    "OUTPUT_INVALID",
    "SchemaError",
    "check_output_schema",
    "extract_json",
    "instructions",
    "normalize_output_schema",
    "response_format",
    "shape",
    "validation_problems",
]
