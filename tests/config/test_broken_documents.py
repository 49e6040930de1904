"""Each file in broken/ gives one precise, readable issue (file, line, field, words)."""

from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.config import load_path

from .conftest import BROKEN

# name -> (file the issue is in, line, column or None for "any", field path, words it contains)
# fmt: off
CASES: dict[str, tuple[str, int | None, int | None, str, tuple[str, ...]]] = {
    "typo_field.agent.yaml": (
        "typo_field.agent.yaml", 10, 5, "spec.orchestration.max_iteration",
        ("unknown field 'max_iteration'", "(did you mean 'max_iterations'?)"),
    ),
    "wrong_type.agent.yaml": (
        "wrong_type.agent.yaml", 9, 21, "spec.orchestration.max_iterations",
        ("expected an integer, got 'ten'",),
    ),
    "bad_enum.agent.yaml": (
        "bad_enum.agent.yaml", 9, 14, "spec.orchestration.pattern",
        ("expected one of react, plan_and_execute", "got 'reactt'", "did you mean 'react'"),
    ),
    "missing_required.agent.yaml": (
        # a missing field points at its parent mapping
        "missing_required.agent.yaml", 7, 5, "spec.model.primary.model",
        ("missing required field 'model'",),
    ),
    "missing_spec.agent.yaml": (
        "missing_spec.agent.yaml", 1, 1, "spec", ("missing required field 'spec'",),
    ),
    "unset_variable.agent.yaml": (
        "unset_variable.agent.yaml", 10, 17, "spec.model.primary.endpoint",
        ("environment variable 'OLLAMA_HOST' is not set", "${OLLAMA_HOST:-default}"),
    ),
    "malformed_reference.agent.yaml": (
        "malformed_reference.agent.yaml", 10, 17, "spec.model.primary.endpoint",
        ("malformed reference '${OLLAMA HOST}'",),
    ),
    "bad_syntax.agent.yaml": (
        "bad_syntax.agent.yaml", 11, 1, "",
        ("invalid YAML", "quoted scalar at line 9"),
    ),
    "tab_indent.agent.yaml": (
        "tab_indent.agent.yaml", 8, 1, "", ("invalid YAML", "tabs"),
    ),
    "duplicate_key.agent.yaml": (
        "duplicate_key.agent.yaml", 11, 5, "spec.orchestration.max_iterations",
        ("duplicate key 'max_iterations'", "first defined at line 9"),
    ),
    "unknown_kind.yaml": (
        "unknown_kind.yaml", 2, 7, "kind",
        ("unknown kind 'Agnet'", "did you mean 'Agent'"),
    ),
    "wrong_api_version.agent.yaml": (
        "wrong_api_version.agent.yaml", 1, 13, "apiVersion",
        ("unsupported apiVersion 'astromesh/v2'", "expected astromesh/v1"),
    ),
    "python_handler.agent.yaml": (
        "python_handler.agent.yaml", 11, 16, "spec.tools[0].handler",
        ("'package.module:function'", "got 'mytools.crm.lookup'", "'mytools.crm:lookup'"),
    ),
    "mcp_stdio_without_command.agent.yaml": (
        "mcp_stdio_without_command.agent.yaml", 11, 7, "spec.tools[1].command",
        ("transport 'stdio' needs 'command'",),
    ),
    "guardrail_bad_regex.agent.yaml": (
        "guardrail_bad_regex.agent.yaml", 13, 13,
        "spec.guardrails.output[0].blocked_patterns[1]",
        ("invalid regular expression '([a-z]+'", "missing )"),
    ),
    "unknown_guardrail.agent.yaml": (
        "unknown_guardrail.agent.yaml", 10, 15, "spec.guardrails.input[0].type",
        ("unknown guardrail type 'pii_detect'", "did you mean 'pii_detection'"),
    ),
    "unknown_tool_type.agent.yaml": (
        "unknown_tool_type.agent.yaml", 9, 13, "spec.tools[0].type",
        ("unknown tool type 'webhok'", "did you mean 'webhook'"),
    ),
    "unknown_builtin.agent.yaml": (
        "unknown_builtin.agent.yaml", 10, 13, "spec.tools[0].name",
        ("unknown builtin tool 'read_fil'", "did you mean 'read_file'"),
    ),
    "duplicate_tool_name.agent.yaml": (
        "duplicate_tool_name.agent.yaml", 11, 27, "spec.tools[2].name",
        ("duplicate tool name 'lookup'", "tools[0]"),
    ),
    "pipeline_without_stages.agent.yaml": (
        "pipeline_without_stages.agent.yaml", 8, 3, "spec.orchestration.stages",
        ("pattern 'pipeline' needs 'stages'",),
    ),
    "pipeline_unknown_stage_tool.agent.yaml": (
        "pipeline_unknown_stage_tool.agent.yaml", 11, 32, "spec.orchestration.stages[0].tool",
        ("stage 'retrieve': tool 'search_dcos' is not in spec.tools",
         "(did you mean 'search_docs'?)"),
    ),
    "field_of_other_pattern.agent.yaml": (
        "field_of_other_pattern.agent.yaml", 10, 5, "spec.orchestration.workers",
        ("'workers' belongs to pattern supervisor", "not 'react'"),
    ),
    "mixed_model_forms.agent.yaml": (
        "mixed_model_forms.agent.yaml", 8, 5, "spec.model.roles",
        ("mixes the primary form", "role form"),
    ),
    "roles_without_default.agent.yaml": (
        "roles_without_default.agent.yaml", 6, 3, "spec.model.default",
        ("missing required field 'default'",),
    ),
    "fallback_item_missing_model.agent.yaml": (
        "fallback_item_missing_model.agent.yaml", 10, 9, "spec.model.fallback[1].model",
        ("missing required field 'model'",),
    ),
    "unknown_provider.agent.yaml": (
        "unknown_provider.agent.yaml", 8, 17, "spec.model.primary.provider",
        ("unknown provider 'olama' (did you mean 'ollama'?)",),
    ),
    "api_key_in_env_field.agent.yaml": (
        "api_key_in_env_field.agent.yaml", 10, 20, "spec.model.primary.api_key_env",
        ("name* of an environment variable", "not the key itself"),
    ),
    "duplicate_agent": (
        "duplicate_agent/b.agent.yaml", 5, 9, "metadata.name",
        ("duplicate agent name 'helper'", "duplicate_agent/a.agent.yaml:1"),
    ),
    "two_runtimes": (
        "two_runtimes/b.yaml", 2, 7, "kind",
        ("only one RuntimeConfig", "two_runtimes/a.yaml:1"),
    ),
    "not_utf8.agent.yaml": (
        "not_utf8.agent.yaml", 5, 22, "", ("not valid UTF-8", "0xe9"),
    ),
    "empty.agent.yaml": ("empty.agent.yaml", None, None, "", ("file is empty",)),
    "only_comments.agent.yaml": (
        "only_comments.agent.yaml", None, None, "", ("file is empty",),
    ),
    "not_a_mapping.yaml": (
        "not_a_mapping.yaml", 1, 1, "", ("expected a mapping with apiVersion", "got a list"),
    ),
    "bad_name.agent.yaml": (
        "bad_name.agent.yaml", 4, 9, "metadata.name",
        ("'Sales Bot' is not a valid name", "lowercase"),
    ),
    "schema_required_unknown.agent.yaml": (
        "schema_required_unknown.agent.yaml", 15, 20, "spec.tools[0].parameters.required[0]",
        ("required parameter 'querry' is not in properties", "did you mean 'query'"),
    ),
    "bad_parameter_type.agent.yaml": (
        "bad_parameter_type.agent.yaml", 13, 17, "spec.tools[0].parameters.company.type",
        ("got 'str'", "did you mean 'string'"),
    ),
    "cost_limit_without_limit.agent.yaml": (
        "cost_limit_without_limit.agent.yaml", 10, 9, "spec.guardrails.output[0]",
        ("needs 'max_tokens_per_turn' or 'max_cost_per_run'",),
    ),
    "bad_template.agent.yaml": (
        "bad_template.agent.yaml", 9, 13, "spec.prompts.system",
        ("invalid Jinja2 template", "unexpected '}'"),
    ),
    "webhook_bad_method.agent.yaml": (
        "webhook_bad_method.agent.yaml", 12, 15, "spec.tools[0].method",
        ("expected one of GET, POST, PUT, PATCH, DELETE", "got 'FETCH'"),
    ),
    "provider_type_typo.providers.yaml": (
        "provider_type_typo.providers.yaml", 7, 13, "spec.providers.local.type",
        ("got 'olama'", "did you mean 'ollama'"),
    ),
    "rag_overlap.rag.yaml": (
        "rag_overlap.rag.yaml", 7, 14, "spec.chunking.overlap",
        ("overlap (100) must be smaller than chunk_size (100)",),
    ),
    "runtime_redis_without_url.yaml": (
        "runtime_redis_without_url.yaml", 5, 3, "spec.state.redis_url",
        ("backend 'redis' needs 'redis_url'",),
    ),
    "second_document_bad.agents.yaml": (
        "second_document_bad.agents.yaml", 15, 31, "spec.memory.conversational.backend",
        ("expected one of sqlite, redis, postgres, memory", "got 'mongo'"),
    ),
}
# fmt: on


def test_every_broken_fixture_has_a_case() -> None:
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(CASES)
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_fixture_reports_one_precise_issue(name: str) -> None:
    file, line, column, field, words = CASES[name]
    result = load_path(BROKEN / name, env={})

    assert len(result.errors) == 1, result.error_report()
    (issue,) = result.errors
    sources = {agent.source.file for agent in result.agents.values() if agent.source}
    assert issue.file not in sources, "a file with errors contributes no agents"
    assert Path(issue.file) == BROKEN / file
    assert issue.line == line
    if column is not None:
        assert issue.column == column
    assert issue.field == field
    for word in words:
        assert word in issue.message, f"{word!r} not in {issue.message!r}"
    text = str(issue)
    assert text.startswith(f"{BROKEN / file}:" if line else f"{BROKEN / file}: ")
    if field:
        assert f": {field}: " in text


def test_str_matches_the_documented_shape() -> None:
    result = load_path(BROKEN / "unknown_provider.agent.yaml", env={})
    assert str(result.errors[0]) == (
        f"{BROKEN / 'unknown_provider.agent.yaml'}:8:17: spec.model.primary.provider: "
        "unknown provider 'olama' (did you mean 'ollama'?)"
    )
    assert result.errors[0].suggestion == "ollama"


def test_several_errors_in_one_file_are_all_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "many.agent.yaml"
    path.write_text(
        "apiVersion: astromesh/v1\n"
        "kind: Agent\n"
        "metadata: {name: many}\n"
        "spec:\n"
        "  model:\n"
        "    primary: {provider: ollama, model: m, modle: x}\n"
        "  orchestration: {max_iterations: 0}\n"
        "  tools:\n"
        "    - {type: pyhton, name: a}\n"
        "    - {type: python, name: b, handler: 'x.y'}\n"
    )
    result = load_path(path, env={})
    assert [(i.line, i.field) for i in result.errors] == [
        (6, "spec.model.primary.modle"),
        (7, "spec.orchestration.max_iterations"),
        (9, "spec.tools[0].type"),
        (10, "spec.tools[1].handler"),
    ]
    assert "must be at least 1, got 0" in result.errors[1].message
