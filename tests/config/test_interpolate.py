"""``${VAR}`` interpolation: on string values after parsing, with defaults and escapes."""

from __future__ import annotations

import pytest

from astromesh.config import load_text
from astromesh.config.interpolate import InterpolationError, interpolate


def test_plain_reference() -> None:
    assert interpolate("http://${HOST}:11434", {"HOST": "ollama"}) == "http://ollama:11434"


def test_several_references_in_one_value() -> None:
    assert interpolate("${A}-${B}", {"A": "x", "B": "y"}) == "x-y"


def test_default_used_when_unset_or_empty() -> None:
    assert interpolate("${PORT:-8000}", {}) == "8000"
    assert interpolate("${PORT:-8000}", {"PORT": ""}) == "8000"
    assert interpolate("${PORT:-8000}", {"PORT": "9000"}) == "9000"


def test_default_may_be_empty_or_contain_colons() -> None:
    assert interpolate("${X:-}", {}) == ""
    assert interpolate("${URL:-http://localhost:1}", {}) == "http://localhost:1"


def test_set_but_empty_without_default_is_empty() -> None:
    assert interpolate("[${X}]", {"X": ""}) == "[]"


def test_escape_gives_a_literal_reference() -> None:
    assert interpolate("cost: $${PRICE}", {"PRICE": "5"}) == "cost: ${PRICE}"
    assert interpolate("$${A} ${A}", {"A": "1"}) == "${A} 1"


def test_text_without_references_is_untouched() -> None:
    assert interpolate("costs $5 {{ jinja }} $HOME", {}) == "costs $5 {{ jinja }} $HOME"


def test_missing_variable_names_it() -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate("${NOPE}", {})
    assert info.value.variable == "NOPE"
    assert "'NOPE' is not set" in info.value.message


def test_malformed_reference() -> None:
    with pytest.raises(InterpolationError, match="malformed reference"):
        interpolate("${1BAD}", {})


AGENT = """\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: env-agent
  labels: {team: "${TEAM:-core}"}
spec:
  model:
    primary:
      provider: ollama
      model: "${MODEL}"
      parameters: {max_tokens: "${MAX_TOKENS:-512}"}
  tools:
    - type: mcp
      name: fs
      command: server
      args: ["--root", "${ROOT}", "$${LITERAL}"]
  permissions:
    network:
      allowed: ["${HOST:-localhost}:8000"]
"""


def test_values_nested_in_lists_and_mappings_are_interpolated() -> None:
    result = load_text(AGENT, env={"MODEL": "llama3.1:8b", "ROOT": "/data"})
    assert result.ok, result.error_report()
    spec = result.agents["env-agent"].spec
    assert spec.model.candidates()[0].model == "llama3.1:8b"
    assert spec.model.candidates()[0].parameters.max_tokens == 512  # text, then an int
    assert spec.tools[0].args == ["--root", "/data", "${LITERAL}"]  # type: ignore[union-attr]
    assert spec.permissions.network is not None
    assert spec.permissions.network.allowed == ["localhost:8000"]
    assert result.agents["env-agent"].metadata.labels == {"team": "core"}


def test_every_missing_variable_is_reported_with_its_line_and_field() -> None:
    result = load_text(AGENT, source="env.agent.yaml", env={})
    assert [str(i) for i in result.errors] == [
        "env.agent.yaml:10:14: spec.model.primary.model: environment variable 'MODEL' is not"
        " set (set it, or write ${MODEL:-default} to give a default)",
        "env.agent.yaml:16:24: spec.tools[0].args[1]: environment variable 'ROOT' is not set"
        " (set it, or write ${ROOT:-default} to give a default)",
    ]


def test_keys_are_not_interpolated() -> None:
    text = AGENT.replace("labels: {team:", 'labels: {"${KEY}":')
    result = load_text(text, env={"MODEL": "m", "ROOT": "/"})
    assert result.ok, result.error_report()
    assert "${KEY}" in result.agents["env-agent"].metadata.labels


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL", "from-os")
    monkeypatch.setenv("ROOT", "/srv")
    result = load_text(AGENT)
    assert result.ok, result.error_report()
    assert result.agents["env-agent"].spec.model.candidates()[0].model == "from-os"
