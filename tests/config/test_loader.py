"""load_path / load_text: folders, cross-document checks, isolation of bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from astromesh.config import LoadResult, load_path, load_text

from .conftest import BROKEN, VALID

MINIMAL = """\
apiVersion: astromesh/v1
kind: Agent
metadata: {{name: {name}}}
spec:
  model:
    primary: {{provider: {provider}, model: m}}
"""


def _copy_valid(tmp_path: Path) -> Path:
    target = tmp_path / "agents"
    shutil.copytree(VALID, target)
    return target


def test_one_bad_file_does_not_stop_the_good_ones(tmp_path: Path) -> None:
    folder = _copy_valid(tmp_path)
    shutil.copy(BROKEN / "typo_field.agent.yaml", folder / "zz-bad.agent.yaml")
    (folder / "sub").mkdir()
    shutil.copy(BROKEN / "not_utf8.agent.yaml", folder / "sub" / "x.agent.yaml")
    (folder / "empty.yml").write_text("")

    result = load_path(folder, env={})

    assert not result.ok
    assert sorted(Path(i.file).name for i in result.errors) == [
        "empty.yml",
        "x.agent.yaml",
        "zz-bad.agent.yaml",
    ]
    assert "sales-qualifier" in result.agents
    assert "role-router-demo" in result.agents
    assert len(result.agents) == 7
    assert result.runtime is not None
    assert folder / "zz-bad.agent.yaml" in result.files
    assert folder / "sub" / "x.agent.yaml" in result.files


def test_a_file_with_one_bad_document_contributes_nothing() -> None:
    result = load_path(BROKEN / "second_document_bad.agents.yaml", env={})
    assert result.agents == {}  # 'fine' is in the same file, so it is skipped too


def test_unknown_provider_with_no_close_match_lists_what_is_known() -> None:
    result = load_text(MINIMAL.format(name="a", provider="zzz"), env={})
    (issue,) = result.errors
    assert issue.suggestion is None
    assert "unknown provider 'zzz'" in issue.message
    assert "openai_compat" in issue.message and "ProviderConfig" in issue.message
    assert result.agents == {}


def test_provider_names_from_a_provider_config_in_another_file(tmp_path: Path) -> None:
    shutil.copy(VALID / "providers.yaml", tmp_path / "providers.yaml")
    (tmp_path / "a.agent.yaml").write_text(MINIMAL.format(name="a", provider="openai"))
    (tmp_path / "b.agent.yaml").write_text(MINIMAL.format(name="b", provider="opena"))
    result = load_path(tmp_path, env={})
    assert list(result.agents) == ["a"]
    (issue,) = result.errors
    assert issue.field == "spec.model.primary.provider"
    assert issue.suggestion == "openai"


def test_unknown_provider_in_role_form_points_at_the_source_key() -> None:
    text = """\
apiVersion: astromesh/v1
kind: Agent
metadata: {name: r}
spec:
  model:
    default:
      candidates:
        - {source: ollama, model: m}
    roles:
      planner:
        candidates:
          - {source: openai_compta, model: m}
"""
    result = load_text(text, source="r.yaml", env={})
    assert [str(i) for i in result.errors] == [
        "r.yaml:12:22: spec.model.roles.planner.candidates[0].source: unknown provider"
        " 'openai_compta' (did you mean 'openai_compat'?)"
    ]


def test_known_providers_extend_the_check() -> None:
    text = MINIMAL.format(name="a", provider="corp-gateway")
    assert not load_text(text, env={}).ok
    assert load_text(text, env={}, known_providers={"corp-gateway"}).ok


def test_duplicate_provider_across_files(tmp_path: Path) -> None:
    shutil.copy(VALID / "providers.yaml", tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: ProviderConfig\nmetadata: {name: more}\n"
        "spec:\n  providers:\n    openai: {type: openai_compat}\n"
        "    groq: {type: openai_compat, endpoint: 'https://api.groq.com/openai/v1'}\n"
        "  routing: {default_strategy: latency_optimized}\n"
    )
    result = load_path(tmp_path, env={})
    assert [(Path(i.file).name, i.line, i.field) for i in result.errors] == [
        ("b.yaml", 6, "spec.providers.openai"),
        ("b.yaml", 8, "spec.routing"),
    ]
    assert "already defined in" in result.errors[0].message
    assert "a.yaml" in result.errors[0].message
    assert sorted(result.providers) == ["groq", "ollama", "openai", "vllm"]
    assert result.providers["openai"].endpoint == "https://api.openai.com/v1"  # the first
    assert result.routing is not None
    assert result.routing.default_strategy == "cost_optimized"  # the first one


def test_duplicate_rag_pipeline_name(tmp_path: Path) -> None:
    shutil.copy(VALID / "product-knowledge.rag.yaml", tmp_path / "a.rag.yaml")
    shutil.copy(VALID / "product-knowledge.rag.yaml", tmp_path / "b.rag.yaml")
    result = load_path(tmp_path, env={})
    assert [Path(i.file).name for i in result.errors] == ["b.rag.yaml", "b.rag.yaml"]
    assert "duplicate RAGPipeline name" in result.errors[0].message
    assert sorted(result.rag_pipelines) == ["local-faq", "product-knowledge"]


def test_single_file_path(valid: LoadResult) -> None:
    result = load_path(VALID / "copilot.agent.yaml", env={})
    assert result.ok, result.error_report()
    assert list(result.agents) == ["astromesh-copilot"]
    assert result.files == [VALID / "copilot.agent.yaml"]
    # role-router names the `openai` ProviderConfig entry, defined in another file; alone,
    # `openai` is upstream's name for the OpenAI API (openai_compat), not an unknown provider
    alone = load_path(VALID / "role-router.agent.yaml", env={})
    assert alone.ok, alone.error_report()
    [(_, planner)] = [
        (path, c)
        for path, c in alone.agents["role-router-demo"].spec.model.all_candidates()
        if path == ("roles", "planner", "candidates", 1)
    ]
    assert (planner.provider, planner.endpoint) == ("openai_compat", "https://api.openai.com/v1")
    with_known = load_path(
        VALID / "role-router.agent.yaml", env={}, known_providers=valid.providers
    )
    assert with_known.ok, with_known.error_report()
    [(_, entry)] = [
        (path, c)
        for path, c in with_known.agents["role-router-demo"].spec.model.all_candidates()
        if path == ("roles", "planner", "candidates", 1)
    ]
    assert entry.provider == "openai"  # the ProviderConfig entry of that name wins


def test_missing_path_is_an_issue_not_an_exception(tmp_path: Path) -> None:
    result = load_path(tmp_path / "nope", env={})
    (issue,) = result.errors
    assert issue.message == "no such file or directory"


def test_empty_folder_is_fine(tmp_path: Path) -> None:
    result = load_path(tmp_path)
    assert result.ok and result.agents == {} and result.files == []


def test_load_text_accepts_json() -> None:
    body = (
        '{"apiVersion": "astromesh/v1", "kind": "Agent", "metadata": {"name": "j"},'
        ' "spec": {"model": {"primary": {"provider": "ollama", "model": "m"}}}}'
    )
    result = load_text(body, source="request", env={})
    assert result.ok, result.error_report()
    assert result.agents["j"].source is not None
    assert result.agents["j"].source.file == "request"
    assert result.files == []


def test_load_text_reports_empty_text() -> None:
    (issue,) = load_text("   \n", env={}).errors
    assert "file is empty" in issue.message


def test_to_dict_round_trips(valid: LoadResult) -> None:
    env = {"PRICE": "${PRICE}"}  # the prompt's escaped $${PRICE} is a literal after loading
    for name, agent in valid.agents.items():
        data = agent.to_dict()
        assert data["apiVersion"] == "astromesh/v1"
        assert "api_version" not in data
        again = load_text(yaml.safe_dump(data), env=env, known_providers=valid.providers)
        assert again.ok, again.error_report()
        assert again.agents[name].to_dict() == data
    others = [*valid.rag_pipelines.values(), *valid.provider_configs, valid.runtime]
    for document in others:
        assert document is not None
        again = load_text(yaml.safe_dump(document.to_dict()), env={})
        assert again.ok, again.error_report()


def test_to_dict_uses_canonical_names_and_drops_nones(valid: LoadResult) -> None:
    data = valid.agents["role-router-demo"].to_dict()
    model = data["spec"]["model"]
    assert model["default"]["candidates"][0]["provider"] == "ollama"  # written `source`
    assert "source" not in model["default"]["candidates"][0]
    assert "fallback" not in model and "primary" not in model
    assert set(model["roles"]) == {"planner", "worker"}
    orchestration = data["spec"]["orchestration"]
    assert orchestration["timeout_seconds"] == 30  # written `timeout`
    assert "workers" not in orchestration and "aggregate" not in orchestration
    assert "chain" not in data["spec"]


def test_issue_to_dict() -> None:
    (issue,) = load_text(MINIMAL.format(name="a", provider="olama"), source="x", env={}).errors
    assert issue.to_dict() == {
        "file": "x",
        "line": 6,
        "column": 25,
        "field": "spec.model.primary.provider",
        "message": "unknown provider 'olama' (did you mean 'ollama'?)",
        "suggestion": "ollama",
    }
