"""Tolerant like upstream, strict on typos: upstream's fields load, ours still refuse typos.

Fields that mean nothing here load with a warning naming them and why; the ones we honour
work in a run against a scripted model; a field neither upstream's nor ours is an error with
"did you mean".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.config import load_path, load_text
from astromesh.config.compat import GLYPH_MESSAGE, UPSTREAM_FIELDS
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from astromesh.tools.builtin.read_file import FileRefused
from tests.compat.documents import (
    GLYPH_AGENT,
    NODE_PROFILE,
    NODE_PROFILE_WARNED,
    UPSTREAM_AGENT_WARNED,
    billing_agent,
    upstream_agent,
    write,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.test_cli import astromesh


def test_a_node_profile_loads_with_a_warning_for_each_node_field() -> None:
    result = load_text(NODE_PROFILE, source="edge.yaml", env={})

    assert result.ok, result.error_report()
    assert sorted(w.field for w in result.warnings) == NODE_PROFILE_WARNED
    by_field = {w.field: w for w in result.warnings}
    assert "this runtime has no nodes" in by_field["spec.services"].message
    assert "log level" in by_field["spec.api.log_level"].message
    assert by_field["spec.mesh"].line == 18  # the line of the key in the file
    assert result.runtime is not None and result.runtime.spec.api.port == 8123


def test_validate_prints_warnings_exits_0_and_strict_makes_them_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "edge.yaml", NODE_PROFILE)

    lenient = astromesh("validate", str(path))
    strict = astromesh("validate", "--strict", str(path))

    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stderr.count("warning:") == len(NODE_PROFILE_WARNED)
    assert "spec.services: upstream field ignored" in lenient.stderr
    assert "(5 warning(s))" in lenient.stdout
    assert strict.returncode == 1
    assert strict.stderr.count("error:") == len(NODE_PROFILE_WARNED)


def test_a_field_neither_upstream_nor_ours_is_still_an_error_with_a_suggestion() -> None:
    typo = NODE_PROFILE.replace("    port: 8123", "    prot: 8123")
    result = load_text(typo, source="edge.yaml", env={})

    assert [i.field for i in result.errors] == ["spec.api.prot"]
    assert "did you mean 'port'?" in result.errors[0].message
    tool_typo = load_text(
        upstream_agent("http://127.0.0.1:9").replace("permissions: [read]", "permisions: [read]"),
        env={},
    )
    assert [i.field for i in tool_typo.errors] == ["spec.tools[0].permisions"]
    assert "did you mean 'permissions'?" in tool_typo.errors[0].message  # upstream's, misspelt


def test_glyph_is_refused_once_with_why() -> None:
    result = load_text(GLYPH_AGENT, source="glyphic.agent.yaml", env={})

    assert [(i.field, i.message) for i in result.errors] == [
        ("spec.orchestration.pattern", GLYPH_MESSAGE)
    ]
    assert result.errors[0].line == 9


def test_the_catalog_covers_every_field_the_loader_warns_about(tmp_path: Path) -> None:
    """Every warning names a catalogued field (the docs and the loader read one list)."""
    write(tmp_path, "edge.yaml", NODE_PROFILE)
    write(tmp_path, "concierge.agent.yaml", upstream_agent("http://127.0.0.1:9"))
    write(tmp_path, "billing.agent.yaml", billing_agent("http://127.0.0.1:9"))

    result = load_path(tmp_path, env={})

    assert result.ok, result.error_report()
    leaves = {entry.path[-1] for entry in UPSTREAM_FIELDS if entry.treatment != "honoured"}
    warned = {w.field.rsplit(".", 1)[-1] for w in result.warnings}
    assert warned <= leaves
    concierge = [w.field for w in result.agents["concierge"].warnings]
    assert sorted(concierge) == UPSTREAM_AGENT_WARNED


async def test_an_upstream_agent_runs_with_the_fields_it_honours(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    agents = tmp_path / "agents"
    write(agents, "concierge.agent.yaml", upstream_agent(openai_server.url))
    write(agents, "billing.agent.yaml", billing_agent(openai_server.url))
    write(agents, "breakfast.txt", "Breakfast is served 7-10.")
    openai_server.push(
        Reply(tool_calls=[("read_file", {"path": "breakfast.txt"})]),
        Reply("Breakfast is from 7 to 10."),
    )

    async with AgentRuntime(agents, env={}, state=MemoryBackend()) as runtime:
        doc = runtime.describe("concierge")
        run = await runtime.run("concierge", "When is breakfast? Mail me at ada@example.com")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Breakfast is from 7 to 10."
    first = openai_server.requests[0]
    # flat temperature/max_tokens under the candidate are the request's parameters
    assert (first["temperature"], first["max_tokens"]) == (0.3, 300)
    system = first["messages"][0]["content"]
    assert "a Front desk assistant.\nTone: Warm and brief." in system
    # pii_redaction is pii_detection with action redact, on the way in
    assert "ada@example.com" not in first["messages"][-1]["content"]
    # read_file without a root reads the agents folder
    tool_result = openai_server.requests[1]["messages"][-1]["content"]
    assert "Breakfast is served 7-10." in tool_result
    assert doc.description == "Answers hotel guests"  # metadata.description
    memory = doc.spec.memory.conversational
    assert memory is not None and (memory.backend, memory.max_turns) == ("memory", 5)
    assert doc.spec.model.primary is not None and doc.spec.model.primary.provider == (
        "openai_compat"
    )


def test_openai_and_litellm_are_openai_compatible_endpoints() -> None:
    text = upstream_agent("http://127.0.0.1:9")
    openai = load_text(
        text.replace("provider: litellm", "provider: openai").replace(
            '      endpoint: "http://127.0.0.1:9"\n', ""
        ),
        env={},
    )
    litellm = load_text(text.replace('      endpoint: "http://127.0.0.1:9"\n', ""), env={})
    configured = load_text(
        text.replace('      endpoint: "http://127.0.0.1:9"\n', ""),
        env={"LITELLM_API_BASE": "http://proxy.internal:4000/v1"},
    )

    def candidate(result):
        primary = result.agents["concierge"].spec.model.primary
        return primary.provider, primary.endpoint, primary.api_key_env

    assert candidate(openai) == ("openai_compat", "https://api.openai.com/v1", "OPENAI_API_KEY")
    assert candidate(litellm) == ("openai_compat", "http://localhost:4000/v1", "LITELLM_API_KEY")
    # an endpoint the document names gets no server key it did not name
    assert candidate(load_text(text, env={}))[2] is None
    [said] = [w for w in litellm.warnings if w.field == "spec.model.primary"]
    assert "LiteLLM proxy (OpenAI-compatible)" in said.message
    assert not [w for w in openai.warnings if w.field == "spec.model.primary"]
    assert candidate(configured)[1] == "http://proxy.internal:4000/v1"


def test_the_compat_page_lists_the_catalog() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "upstream-compat.md").read_text()
    for entry in UPSTREAM_FIELDS:
        assert f"| {entry.kind} | `{entry.dotted}` | {entry.treatment} |" in page, entry.dotted


async def test_read_file_without_root_loads_and_reads_once_a_folder_exists(
    tmp_path: Path,
) -> None:
    """Upstream's copilot names no root and may read only ./config/ and ./docs/ (from the
    agents folder here). It loads, as upstream's does, while neither exists; a read then fails
    naming both folders; once one exists the tool reads under it, and only under it."""
    text = upstream_agent("http://127.0.0.1:9") + (
        "  permissions:\n    filesystem:\n      read: ['./config/', './docs/']\n"
    )
    write(tmp_path, "concierge.agent.yaml", text)
    write(tmp_path, "billing.agent.yaml", billing_agent("http://127.0.0.1:9"))
    write(tmp_path, "secret.txt", "not for the agent")

    async with AgentRuntime(tmp_path, env={}, offline=True) as runtime:
        assert (await runtime.check_agents()).get("concierge") is None
        tool = (await runtime.get("concierge")).tools.get("read_file")
        assert tool is not None
        with pytest.raises(FileRefused, match="none of them exists") as refused:
            tool.read("notes.md")  # type: ignore[attr-defined]
        assert "config" in str(refused.value) and "docs" in str(refused.value)
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "notes.md").write_text("hello")
        assert tool.read("notes.md")["content"] == "hello"  # type: ignore[attr-defined]
        with pytest.raises(FileRefused, match="outside the allowed folder"):
            tool.read("../secret.txt")  # type: ignore[attr-defined]

    async with AgentRuntime(tmp_path, env={}, offline=True) as runtime:
        tool = (await runtime.get("concierge")).tools.get("read_file")
    assert tool.root == (tmp_path / "docs").resolve()  # type: ignore[attr-defined]
