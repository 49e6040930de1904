"""Read an upstream-shaped document as ours, before strict validation.

:func:`normalize` applies :mod:`.catalog` to one parsed document: it rewrites upstream
spellings we honour (``in_memory``, flat ``temperature`` under a candidate, ``max_messages``),
drops the fields that mean nothing here and reports each dropped or inert field as a
:class:`Note` (its path and why). What it does not know is left alone, so the models still
refuse typos with "did you mean". It works on a copy; the parsed YAML (and so every line
number) stays as written. Nothing is removed from a list, so list indices (and the paths of
later errors) do not move.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from astromesh.config.compat.catalog import ANY, GLYPH_MESSAGE, UpstreamField, fields_of
from astromesh.config.yaml_source import FieldPath

_FLAT_PARAMETERS = ("temperature", "max_tokens", "top_p", "stop")
_BACKEND_ALIASES = {"in_memory": "memory"}


@dataclass(frozen=True, slots=True)
class Note:
    """A warning about one field of the document: ``path`` as written in the file."""

    path: FieldPath
    message: str


@dataclass(slots=True)
class Normalized:
    """The document to validate, its warnings, and a refusal that makes validation moot."""

    data: dict[str, Any]
    notes: list[Note]
    refusal: Note | None = None


def normalize(data: dict[str, Any]) -> Normalized:
    """``data`` (one document's mapping) read as this runtime's schema; see the module doc."""
    kind = data.get("kind")
    out = copy.deepcopy(data)
    notes: list[Note] = []
    if kind == "Agent":
        spec = out.get("spec")
        if isinstance(spec, dict):
            refusal = _glyph(spec)
            if refusal is not None:
                return Normalized(out, notes, refusal)
            _agent_rewrites(spec)
    elif kind == "RuntimeConfig":
        state = _at(out, ("spec", "state"))
        if isinstance(state, dict):
            _alias_backend(state)
    if isinstance(kind, str):
        for entry in fields_of(kind, "dropped"):
            for path in _matches(out, entry.path):
                notes.append(_note(entry, path))
                parent = _at(out, path[:-1])
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
        for entry in fields_of(kind, "inert"):
            notes += [_note(entry, path) for path in _matches(out, entry.path)]
    return Normalized(out, sorted(notes, key=lambda n: [str(p) for p in n.path]))


def _note(entry: UpstreamField, path: FieldPath) -> Note:
    verb = "ignored" if entry.treatment == "dropped" else "accepted but not enforced"
    return Note(path, f"upstream field {verb}: {entry.note}")


def _glyph(spec: dict[str, Any]) -> Note | None:
    orchestration = spec.get("orchestration")
    if isinstance(orchestration, dict) and orchestration.get("pattern") == "glyph":
        return Note(("spec", "orchestration", "pattern"), GLYPH_MESSAGE)
    return None


def _agent_rewrites(spec: dict[str, Any]) -> None:
    model = spec.get("model")
    if isinstance(model, dict):
        for candidate in _candidates(model):
            _flat_parameters(candidate)
    memory = spec.get("memory")
    if isinstance(memory, dict):
        for section in memory.values():
            if isinstance(section, dict):
                _alias_backend(section)
        conversational = memory.get("conversational")
        if isinstance(conversational, dict) and "max_messages" in conversational:
            messages = conversational.pop("max_messages")
            if "max_turns" not in conversational:
                turns = math.ceil(messages / 2) if isinstance(messages, int) else messages
                conversational["max_turns"] = turns
    guardrails = spec.get("guardrails")
    if isinstance(guardrails, dict):
        for side in guardrails.values():
            for rule in side if isinstance(side, list) else []:
                if isinstance(rule, dict) and rule.get("type") == "pii_redaction":
                    rule["type"] = "pii_detection"
                    rule.setdefault("action", "redact")
    tools = spec.get("tools")
    for tool in tools if isinstance(tools, list) else []:  # any other shape: the model says
        if isinstance(tool, dict) and "knowledge_base" in tool and "pipeline" not in tool:
            tool["pipeline"] = tool.pop("knowledge_base")


def _candidates(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every candidate mapping of ``spec.model``, in either form."""
    found: list[Any] = [model.get("primary")]
    fallback = model.get("fallback")
    found += fallback if isinstance(fallback, list) else [fallback]
    roles = model.get("roles")
    sections = [model.get("default"), *(roles.values() if isinstance(roles, dict) else [])]
    for section in sections:
        if isinstance(section, dict):
            listed = section.get("candidates")
            found += listed if isinstance(listed, list) else [listed]
    return [c for c in found if isinstance(c, dict)]


def _flat_parameters(candidate: dict[str, Any]) -> None:
    if candidate.get("api_key_env") == "":  # upstream's reference writes "" for "no key"
        candidate.pop("api_key_env")
    flat = {k: candidate.pop(k) for k in _FLAT_PARAMETERS if k in candidate}
    if not flat:
        return
    parameters = candidate.get("parameters")
    if parameters is None:
        candidate["parameters"] = flat
    elif isinstance(parameters, dict):
        for key, value in flat.items():
            parameters.setdefault(key, value)


def _alias_backend(section: dict[str, Any]) -> None:
    backend = section.get("backend")
    if isinstance(backend, str) and backend in _BACKEND_ALIASES:
        section["backend"] = _BACKEND_ALIASES[backend]


def _at(data: Any, path: FieldPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _matches(data: Any, pattern: tuple[str, ...], prefix: FieldPath = ()) -> list[FieldPath]:
    """The concrete paths in ``data`` that ``pattern`` (with ``*`` wildcards) names."""
    if not pattern:
        return [prefix]
    head, rest = pattern[0], pattern[1:]
    if isinstance(data, dict):
        keys = list(data) if head == ANY else [head] if head in data else []
        return [m for key in keys for m in _matches(data[key], rest, (*prefix, key))]
    if isinstance(data, list) and head == ANY:
        return [m for i, item in enumerate(data) for m in _matches(item, rest, (*prefix, i))]
    return []
