"""Every field of every kind, parsed from upstream-style files in valid/."""

from __future__ import annotations

from astromesh.config import AgentDocument, LoadResult
from astromesh.config.guardrails import (
    ContentFilter,
    CostLimit,
    MaxLength,
    PiiDetection,
    TopicFilter,
)
from astromesh.config.tools import (
    AgentTool,
    BuiltinTool,
    ClientTool,
    MCPTool,
    PythonTool,
    RagTool,
    WebhookTool,
)

from .conftest import VALID


def test_folder_loads_every_kind(valid: LoadResult) -> None:
    assert sorted(valid.agents) == [
        "astromesh-copilot",
        "fan-out",
        "research-pipeline",
        "role-router-demo",
        "sales-qualifier",
        "support-supervisor",
        "triage-swarm",
    ]
    assert sorted(valid.rag_pipelines) == ["local-faq", "product-knowledge"]
    assert valid.runtime is not None and valid.runtime.name == "default"
    assert [p.name for p in valid.provider_configs] == ["default-providers"]
    names = {f.name for f in valid.files}
    assert "channels.yaml" not in names  # not an astromesh/v1 document
    assert "ignored.yaml" not in names  # hidden folder


def test_envelope_and_metadata(valid: LoadResult) -> None:
    agent = valid.agents["sales-qualifier"]
    assert agent.api_version == "astromesh/v1"
    assert agent.kind == "Agent"
    assert agent.metadata.name == "sales-qualifier"
    assert agent.metadata.version == "1.0.0"
    assert agent.metadata.namespace == "sales"
    assert agent.metadata.labels == {"team": "revenue", "tier": "production"}


def test_legacy_api_version_and_metadata_defaults(valid: LoadResult) -> None:
    copilot = valid.agents["astromesh-copilot"]
    assert copilot.api_version == "astromesh/v1"  # written astromech/v1
    assert copilot.metadata.version == "0.1"  # a YAML number, kept as text
    fan_out = valid.agents["fan-out"]
    assert fan_out.metadata.version == "0.1.0"
    assert fan_out.metadata.namespace == "default"
    assert fan_out.metadata.labels == {}


def test_source_ref_points_at_the_document(valid: LoadResult) -> None:
    agent = valid.agents["sales-qualifier"]
    assert agent.source is not None
    assert agent.source.file == str(VALID / "sales-qualifier.agent.yaml")
    assert agent.source.line == 2  # after the leading comment
    swarm = valid.agents["triage-swarm"]
    assert swarm.source is not None and swarm.source.line == 40  # 4th document of the file
    assert "source" not in agent.to_dict() and "_source" not in agent.to_dict()


def test_identity_prompts_output_schema(valid: LoadResult) -> None:
    spec = valid.agents["sales-qualifier"].spec
    assert spec.identity.display_name == "Sales Lead Qualifier"
    assert spec.identity.description.startswith("Qualifies")
    assert spec.identity.avatar == "sales-bot"
    assert "{{ agent.display_name }}" in spec.prompts.system
    assert "${PRICE}" in spec.prompts.system  # $${PRICE} is the escape
    assert spec.prompts.templates == {"greeting": "Hello {{ user }}"}
    # upstream's shorthand, expanded to the JSON Schema it means
    assert spec.output_schema == {
        "type": "object",
        "properties": {"score": {"type": "integer"}, "urgent": {"type": "boolean"}},
    }


def test_primary_model_with_fallback_and_routing(valid: LoadResult) -> None:
    model = valid.agents["sales-qualifier"].spec.model
    primary = model.primary
    assert primary is not None
    assert primary.provider == "ollama"
    assert primary.model == "llama3.1:8b"
    assert primary.endpoint == "http://localhost:11434"  # ${OLLAMA_URL:-...} default
    assert primary.timeout_seconds == 45
    params = primary.parameters
    assert (params.temperature, params.top_p, params.max_tokens) == (0.3, 0.9, 2048)
    assert params.stop == ["###"]
    assert params.model_extra == {"num_ctx": 8192}
    assert [c.model for c in model.fallback] == ["gpt-4o-mini"]
    assert model.fallback[0].api_key_env == "OPENAI_API_KEY"
    assert model.routing is not None
    assert model.routing.strategy == "cost_optimized"
    assert model.routing.health_check_interval == 30


def test_fallback_list_and_provider_config_names(valid: LoadResult) -> None:
    model = valid.agents["fan-out"].spec.model
    assert [(c.provider, c.model) for c in model.candidates()] == [
        ("openai", "gpt-4o-mini"),  # a ProviderConfig entry, not a type
        ("ollama", "llama3.1:8b"),
        ("vllm", "mistral"),
    ]


def test_role_form(valid: LoadResult) -> None:
    agent = valid.agents["role-router-demo"]
    model = agent.spec.model
    assert model.uses_roles
    assert model.roles() == ["default", "planner", "worker"]
    assert [c.provider for c in model.candidates("planner")] == ["openai_compat", "openai"]
    assert model.candidates()[0].provider == "ollama"  # `source` alias
    assert model.strategy("planner") == "quality_first"
    assert model.strategy("worker") == "cost_optimized"
    orchestration = agent.spec.orchestration
    assert orchestration.pattern == "plan_and_execute"
    assert orchestration.max_replans == 2
    assert orchestration.timeout_seconds == 30  # `timeout` alias


def test_orchestration_fields(valid: LoadResult) -> None:
    react = valid.agents["sales-qualifier"].spec.orchestration
    assert (react.pattern, react.max_iterations, react.timeout_seconds) == ("react", 5, 60)
    assert react.tool_calling == "native"
    pipeline = valid.agents["research-pipeline"].spec.orchestration
    assert pipeline.pattern == "pipeline"
    assert pipeline.stages is not None
    assert [(s.name, s.agent, s.prompt) for s in pipeline.stages] == [
        ("research", "web-researcher", None),
        ("summarize", None, "Summarize: {{ input }}"),
    ]
    fan_out = valid.agents["fan-out"].spec.orchestration
    assert fan_out.targets is not None
    assert [(t.agent, t.model) for t in fan_out.targets] == [
        ("web-researcher", None),
        (None, "planner"),
    ]
    assert fan_out.aggregate == "vote"
    supervisor = valid.agents["support-supervisor"].spec.orchestration
    assert supervisor.workers == ["web-researcher", "email-composer"]
    swarm = valid.agents["triage-swarm"].spec.orchestration
    assert swarm.agents == ["sales-qualifier", "support-supervisor"]
    assert swarm.max_handoffs == 4


def test_orchestration_defaults() -> None:
    agent = AgentDocument.model_validate(
        {
            "apiVersion": "astromesh/v1",
            "kind": "Agent",
            "metadata": {"name": "x"},
            "spec": {"model": {"primary": {"provider": "ollama", "model": "m"}}},
        }
    )
    o = agent.spec.orchestration
    assert (o.pattern, o.max_iterations, o.timeout_seconds, o.tool_calling) == (
        "react",
        10,
        120,
        "auto",
    )
    assert agent.spec.tools == []
    assert agent.spec.memory.conversational is None
    assert agent.spec.permissions.allows("anything")


def test_runtime_defaults_fill_unset_orchestration(valid: LoadResult) -> None:
    assert valid.runtime is not None
    defaults = valid.runtime.spec.defaults.orchestration
    copilot = valid.agents["astromesh-copilot"].spec.orchestration  # sets max_iterations: 5
    merged = copilot.with_defaults(defaults)
    assert merged.max_iterations == 5
    fan_out = valid.agents["triage-swarm"].spec.orchestration  # sets no max_iterations
    assert fan_out.with_defaults(defaults).max_iterations == 10


def test_tools_of_every_type(valid: LoadResult) -> None:
    tools = valid.agents["sales-qualifier"].spec.tools
    by_name = {t.name: t for t in tools}
    assert [type(t) for t in tools] == [
        ClientTool,
        BuiltinTool,
        PythonTool,
        MCPTool,
        MCPTool,
        WebhookTool,
        RagTool,
        AgentTool,
    ]
    client = by_name["lookup_company"]
    assert client.description == "Look up company information"
    builtin = by_name["read_file"]
    assert isinstance(builtin, BuiltinTool) and builtin.config == {"root": "./docs"}
    python = by_name["score_lead"]
    assert isinstance(python, PythonTool)
    assert (python.module, python.attribute) == ("sales.scoring", "score_lead")
    crm = by_name["crm"]
    assert isinstance(crm, MCPTool)
    assert (crm.transport, crm.command, crm.args) == ("stdio", "crm-mcp", ["--readonly"])
    assert crm.env == {"CRM_TOKEN": "dev-token"}
    assert crm.allowed_tools == ["search_crm"]
    docs = by_name["docs"]
    assert isinstance(docs, MCPTool)
    assert docs.transport == "streamable_http"  # inferred from url
    assert docs.headers == {"Authorization": "Bearer x"}
    assert docs.allowed_tools is None
    hook = by_name["notify_sales"]
    assert isinstance(hook, WebhookTool)
    assert (hook.url, hook.method, hook.timeout_seconds) == (
        "https://hooks.example.com/lead",
        "PUT",
        10,
    )
    assert hook.headers == {"X-Team": "revenue"}
    assert hook.secret_env == "WEBHOOK_SECRET"
    assert hook.allow_private_network is False
    rag = by_name["product_docs"]
    assert isinstance(rag, RagTool) and (rag.pipeline, rag.top_k) == ("product-knowledge", 3)
    agent_tool = by_name["compose_email"]
    assert isinstance(agent_tool, AgentTool) and agent_tool.agent == "email-composer"


def test_builtin_tools_without_parameters(valid: LoadResult) -> None:
    tools = valid.agents["astromesh-copilot"].spec.tools
    assert [t.name for t in tools] == ["read_file", "json_transform", "text_summarize"]
    assert all(isinstance(t, BuiltinTool) for t in tools)


def test_memory(valid: LoadResult) -> None:
    memory = valid.agents["sales-qualifier"].spec.memory
    conv = memory.conversational
    assert conv is not None
    assert (conv.backend, conv.strategy, conv.max_turns, conv.ttl, conv.max_tokens) == (
        "redis",
        "sliding_window",
        20,
        3600,
        4000,
    )
    assert memory.semantic is not None
    assert (memory.semantic.backend, memory.semantic.similarity_threshold) == ("chromadb", 0.75)
    assert memory.semantic.max_results == 5
    assert memory.episodic is not None and memory.episodic.backend == "sqlite"


def test_guardrails(valid: LoadResult) -> None:
    guardrails = valid.agents["sales-qualifier"].spec.guardrails
    pii, length, content, topic = guardrails.input
    assert isinstance(pii, PiiDetection) and pii.action == "redact"
    assert pii.entities == ["email", "phone"]
    assert isinstance(length, MaxLength) and length.max_chars == 5000
    assert isinstance(content, ContentFilter)
    assert content.forbidden_keywords == ["password"]
    assert content.compiled_patterns()[0].search("card 1234567812345678")
    assert content.action == "block"
    assert isinstance(topic, TopicFilter) and topic.forbidden_topics == ["politics"]
    cost, redact = guardrails.output
    assert isinstance(cost, CostLimit)
    assert (cost.max_tokens_per_turn, cost.max_cost_per_run) == (1000, 0.5)
    assert isinstance(redact, ContentFilter) and redact.action == "redact"


def test_permissions(valid: LoadResult) -> None:
    permissions = valid.agents["sales-qualifier"].spec.permissions
    # search_crm is not a declared tool: upstream lists extra actions, that is fine.
    assert permissions.allowed_actions == ["lookup_company", "search_crm"]
    assert permissions.allows("search_crm") and not permissions.allows("delete_all")
    assert permissions.filesystem is not None
    assert permissions.filesystem.read == ["./docs/"]
    assert permissions.filesystem.write == ["./out/"]
    assert permissions.network is not None
    assert permissions.network.allowed == ["api.openai.com:443"]
    assert permissions.execution is not None and permissions.execution.dry_run is True


def test_chain(valid: LoadResult) -> None:
    chain = valid.agents["sales-qualifier"].spec.chain
    assert chain is not None and chain.mode == "sequential"
    (step,) = chain.on_complete
    assert step.agent == "email-composer"
    assert step.when == "{{ output.data.score > 7 }}"
    assert step.input == "{{ output.answer }}"
    assert step.retry is not None
    assert (step.retry.max_attempts, step.retry.backoff) == (3, "exponential")
    assert step.timeout_seconds == 30
    assert step.on_error == "continue"


def test_provider_config(valid: LoadResult) -> None:
    assert sorted(valid.providers) == ["ollama", "openai", "vllm"]
    openai = valid.providers["openai"]
    assert openai.type == "openai_compat"
    assert openai.endpoint == "https://api.openai.com/v1"
    assert openai.api_key_env == "OPENAI_API_KEY"
    assert openai.models == ["gpt-4o", "gpt-4o-mini"]
    assert openai.timeout_seconds == 20
    assert openai.pricing["gpt-4o"].input_per_million == 2.5
    assert openai.pricing["gpt-4o"].output_per_million == 10
    assert valid.providers["ollama"].health_check_interval == 30
    assert valid.providers["vllm"].health_check_interval == 30  # default
    routing = valid.routing
    assert routing is not None
    assert (routing.default_strategy, routing.fallback_enabled) == ("cost_optimized", True)
    assert routing.circuit_breaker.failure_threshold == 3
    assert routing.circuit_breaker.recovery_timeout == 60


def test_rag_pipeline(valid: LoadResult) -> None:
    rag = valid.rag_pipelines["product-knowledge"]
    assert rag.metadata.version == "1.0.0"
    spec = rag.spec
    assert (spec.chunking.strategy, spec.chunking.chunk_size, spec.chunking.overlap) == (
        "recursive",
        512,
        50,
    )
    assert spec.chunking.separators == ["\n\n", "\n", ". ", " "]
    e = spec.embeddings
    assert (e.provider, e.model, e.endpoint, e.dimension) == (
        "ollama",
        "nomic-embed-text",
        "http://ollama:11434",
        768,
    )
    store = spec.vector_store
    assert (store.backend, store.collection) == ("pgvector", "product_docs")
    assert isinstance(store.connection, dict) and store.connection["port"] == 5432
    assert store.dsn() == "postgresql://astromech:astromech@postgres:5432/astromech"
    r = spec.reranking
    assert (r.enabled, r.provider, r.model, r.top_k) == (
        True,
        "cross_encoder",
        "cross-encoder/ms-marco-MiniLM-L-6-v2",
        5,
    )
    assert (spec.retrieval.top_k, spec.retrieval.similarity_threshold) == (20, 0.7)


def test_rag_pipeline_faiss_and_defaults(valid: LoadResult) -> None:
    spec = valid.rag_pipelines["local-faq"].spec
    assert spec.vector_store.backend == "faiss"
    assert spec.vector_store.path == ".astromesh/faq.faiss"
    assert spec.vector_store.dsn() is None
    assert spec.embeddings.provider == "onnx" and spec.embeddings.dimension == 384
    assert spec.reranking.provider == "bm25_rrf" and spec.reranking.enabled is False
    assert spec.retrieval.top_k == 10


def test_runtime_config(valid: LoadResult) -> None:
    runtime = valid.runtime
    assert runtime is not None
    spec = runtime.spec
    assert (spec.api.host, spec.api.port) == ("0.0.0.0", 8000)
    assert spec.defaults.orchestration.pattern == "react"
    assert spec.defaults.orchestration.max_iterations == 10
    assert spec.state.backend == "sqlite"
    assert spec.state.sqlite_path == ".astromesh/state.db"
    assert spec.state.redis_url is None and spec.state.postgres_dsn is None


def test_summary_for_agent_list(valid: LoadResult) -> None:
    summary = valid.agents["sales-qualifier"].summary()
    assert summary["name"] == "sales-qualifier"
    assert summary["version"] == "1.0.0"
    assert summary["namespace"] == "sales"
    assert summary["description"].startswith("Qualifies")
    assert summary["pattern"] == "react"
