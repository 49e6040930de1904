"""Size limits of ``astromesh/v1`` documents, in one place.

Agent documents are untrusted input: any API key holder can ``POST /v1/agents``. The request
body is capped (``ASTROMESH_MAX_BODY_BYTES``, 1 MiB by default, 413 beyond), but within that
a document could still nest ten thousand lists deep (a ``RecursionError``, a 500), name
thousands of tools (each opened at build time) or carry a megabyte system prompt (sent with
every model call). Each limit below is far above what a real agent needs and low enough that
the work it allows is bounded; a document over one gets a validation issue naming the field
and the limit, through the loader's ordinary file/line/field path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

# No astromesh imports at module level: yaml_source reads these constants, and issues (which
# the checks below raise through) imports yaml_source.

MAX_NESTING_DEPTH: Final = 64
"""Levels of lists and mappings in a document. Real documents nest under ten (a tool's JSON
schema a few more); YAML composition and validation recurse once per level, so an unbounded
depth overflows the stack."""

MAX_DOCUMENT_VALUES: Final = 20_000
"""Values (scalars, lists, mappings) in one document, counting every use of a YAML alias
(``*a``) as a copy: stops the "billion laughs" document whose few lines of aliases expand to
billions of values, after about 0.2 s of reading. A real agent, even with 64 tools and their
parameter schemas, has a few thousand."""

MAX_NAME_CHARS: Final = 63
"""``metadata.name``: it appears in URLs, storage keys and Step Functions execution names
(80 characters with a prefix); 63 is the DNS-label length names like it usually follow."""

MAX_TOOL_NAME_CHARS: Final = 64
"""A tool name: the longest function name model APIs accept (OpenAI's is 64)."""

MAX_DISPLAY_NAME_CHARS: Final = 200
"""``spec.identity.display_name``: a title, shown in listings."""

MAX_DESCRIPTION_CHARS: Final = 1_000
"""``spec.identity.description``: a paragraph; it is also the tool description other agents'
models read when they call this one, so it is sent with their every request."""

MAX_PROMPT_CHARS: Final = 32_768
"""A system prompt, named template or pipeline stage prompt (32 KiB, about 8k tokens): it is
rendered for and sent with every model call of every run."""

MAX_TOOLS: Final = 64
"""Tools of one agent: each is built (an MCP session, an HTTP client) with the agent and
described to the model on every call; models choose poorly among more than a few dozen."""

MAX_LIST_ITEMS: Final = 32
"""Guardrails per side, model candidates, pipeline stages, fan-out targets, workers, swarm
members and chained agents: each is one step, call or check per run."""

MAX_NAMED_ITEMS: Final = 64
"""Named templates, labels and model roles."""

MAX_PERMISSION_ENTRIES: Final = 256
"""Entries of each permission list (allowed actions, paths, hosts)."""

# Where each limit applies, as paths below ``spec`` ("*" is every item of a list or mapping):
# (path, limit, what the limit is called in messages).
_COUNT_LIMITS: Final[tuple[tuple[tuple[str, ...], int, str], ...]] = (
    (("tools",), MAX_TOOLS, "tools"),
    (("prompts", "templates"), MAX_NAMED_ITEMS, "named templates"),
    (("guardrails", "input"), MAX_LIST_ITEMS, "input guardrails"),
    (("guardrails", "output"), MAX_LIST_ITEMS, "output guardrails"),
    (("guardrails", "tool_results"), MAX_LIST_ITEMS, "tool result guardrails"),
    (("model", "fallback"), MAX_LIST_ITEMS, "fallback models"),
    (("model", "default", "candidates"), MAX_LIST_ITEMS, "model candidates"),
    (("model", "roles"), MAX_NAMED_ITEMS, "model roles"),
    (("model", "roles", "*", "candidates"), MAX_LIST_ITEMS, "model candidates"),
    (("orchestration", "stages"), MAX_LIST_ITEMS, "pipeline stages"),
    (("orchestration", "targets"), MAX_LIST_ITEMS, "fan-out targets"),
    (("orchestration", "workers"), MAX_LIST_ITEMS, "workers"),
    (("orchestration", "agents"), MAX_LIST_ITEMS, "swarm agents"),
    (("chain", "on_complete"), MAX_LIST_ITEMS, "chained agents"),
    (("permissions", "allowed_actions"), MAX_PERMISSION_ENTRIES, "allowed actions"),
    (("permissions", "filesystem", "read"), MAX_PERMISSION_ENTRIES, "readable paths"),
    (("permissions", "filesystem", "write"), MAX_PERMISSION_ENTRIES, "writable paths"),
    (("permissions", "network", "allowed"), MAX_PERMISSION_ENTRIES, "allowed hosts"),
)
_LENGTH_LIMITS: Final[tuple[tuple[tuple[str, ...], int, str], ...]] = (
    (("identity", "display_name"), MAX_DISPLAY_NAME_CHARS, "display name"),
    (("identity", "description"), MAX_DESCRIPTION_CHARS, "description"),
    (("prompts", "system"), MAX_PROMPT_CHARS, "system prompt"),
    (("prompts", "templates", "*"), MAX_PROMPT_CHARS, "template"),
    (("orchestration", "stages", "*", "prompt"), MAX_PROMPT_CHARS, "stage prompt"),
    (("chain", "on_complete", "*", "when"), MAX_PROMPT_CHARS, "template"),
    (("chain", "on_complete", "*", "input"), MAX_PROMPT_CHARS, "template"),
    (("tools", "*", "name"), MAX_TOOL_NAME_CHARS, "tool name"),
)


def _walk(data: Any, path: tuple[str, ...], at: tuple[str, ...] = ()) -> Iterator[Any]:
    """``(field path, value)`` of every value at ``path`` in raw (not yet validated) data."""
    if not path:
        yield at, data
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for i, item in enumerate(data):
                yield from _walk(item, rest, (*at, str(i)))
        elif isinstance(data, dict):
            for key, item in data.items():
                yield from _walk(item, rest, (*at, str(key)))
    elif isinstance(data, dict) and head in data:
        yield from _walk(data[head], rest, (*at, head))


def check_spec_limits(data: Any) -> Any:
    """Raise the config error for the first limit the raw ``spec`` of an Agent goes over.

    Checked on the raw data, before the items are validated, so a document with a hundred
    thousand tools is refused by counting rather than by validating each.
    """
    from astromesh.config.issues import config_error

    for path, limit, what in _COUNT_LIMITS:
        for at, value in _walk(data, path):
            if isinstance(value, list | dict) and len(value) > limit:
                raise config_error(
                    f"too many {what}: {len(value)}, the limit is {limit}", field=".".join(at)
                )
    for path, limit, what in _LENGTH_LIMITS:
        for at, value in _walk(data, path):
            if isinstance(value, str) and len(value) > limit:
                raise config_error(
                    f"{what} too long: {len(value)} characters, the limit is {limit}",
                    field=".".join(at),
                )
    return data


def check_name_length(value: str, *, limit: int = MAX_NAME_CHARS, what: str = "name") -> str:
    """``value`` or the config error saying it is longer than ``limit``."""
    from astromesh.config.issues import config_error

    if len(value) > limit:
        raise config_error(f"{what} too long: {len(value)} characters, the limit is {limit}")
    return value


# -- Workflow documents (astromesh.config.workflow) ----------------------------------------

MAX_WORKFLOW_STEPS: Final = 64
"""Steps of one workflow (top level). Each is a persisted transition of every run."""

MAX_PARALLEL_BRANCHES: Final = MAX_LIST_ITEMS
"""Branches of one ``parallel`` step: each is a concurrent agent run or tool call."""

MAX_SWITCH_CASES: Final = MAX_LIST_ITEMS
"""Cases of one ``switch`` step: each is a template rendered at that step."""

MAX_WORKFLOW_SECONDS: Final = 366 * 24 * 3600
"""Any duration a workflow names (its timeout, a wait, an approval's timeout): one year,
the longest a Step Functions Standard execution lives."""

MAX_WORKFLOW_TRANSITIONS: Final = 1_000
"""Steps one workflow run may enter in all (a loop through a wait or an approval goes
round again): past it the run fails instead of looping for ever."""

MAX_WORKFLOW_ARGUMENT_VALUES: Final = 256
"""Values (nested) in one tool step's ``arguments``; each string is a template."""
