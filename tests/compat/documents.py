"""Documents written the way upstream Astromesh writes them (our own text, upstream's shapes).

Each one exercises a cause of upstream documents failing here (issue 15): node profiles,
upstream-only fields, provider names, flat model parameters, ``in_memory``, RAG tools naming
no pipeline, supervisor and swarm taking their members from agent tools.
"""

from __future__ import annotations

from pathlib import Path

NODE_PROFILE = """\
apiVersion: astromesh/v1
kind: RuntimeConfig
metadata:
  name: edge-worker
spec:
  role: worker
  api:
    host: "127.0.0.1"
    port: 8123
    log_level: debug
  services:
    api: true
    agents: true
    inference: false
  peers:
    - name: gateway
      url: http://gateway:8000
  mesh:
    enabled: true
    seeds: [http://gateway:8000]
"""

NODE_PROFILE_WARNED = [
    "spec.api.log_level",
    "spec.mesh",
    "spec.peers",
    "spec.role",
    "spec.services",
]


def upstream_agent(url: str, *, name: str = "concierge") -> str:
    """An agent using every upstream field the issue lists, on the scripted server at
    ``url`` (through upstream's ``litellm`` provider name with an endpoint)."""
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: {name}
  version: "1.0.0"
  description: "Answers hotel guests"
spec:
  identity:
    display_name: Concierge
    role: "Front desk assistant"
    personality: "Warm and brief"
  model:
    primary:
      provider: litellm
      model: scripted
      endpoint: "{url}"
      temperature: 0.3
      max_tokens: 300
  prompts:
    system: |
      You are {{{{ agent.display_name }}}}, a {{{{ agent.role }}}}.
      Tone: {{{{ agent.personality }}}}.
  orchestration:
    pattern: react
    max_iterations: 4
    timeout: 30
  tools:
    - name: read_file
      type: builtin
      description: "Read a note from the agents folder"
      permissions: [read]
    - name: ask_billing
      type: agent
      agent: billing
      description: "Billing questions"
      context_transform: '{{"q": "{{{{ data.query }}}}"}}'
  memory:
    conversational:
      backend: in_memory
      strategy: sliding_window
      max_messages: 10
      connection:
        url: "redis://somewhere:6379/0"
  guardrails:
    input:
      - type: pii_redaction
      - type: topic_filter
        allowed_topics: [hotel, rooms]
    output:
      - type: content_filter
        action: block
        categories: [harmful]
      - type: content_filter
        blocked_categories: [harassment]
        forbidden_keywords: [password]
"""


UPSTREAM_AGENT_WARNED = [
    "spec.guardrails.input[1].allowed_topics",
    "spec.guardrails.output[0].categories",
    "spec.guardrails.output[1].blocked_categories",
    "spec.memory.conversational.connection",
    "spec.tools[0].permissions",
]


def billing_agent(url: str) -> str:
    """A plain worker agent (upstream's minimal shape) on the scripted server."""
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: billing
  description: "Handles invoices and refunds"
spec:
  model:
    primary:
      provider: openai_compat
      model: scripted
      endpoint: "{url}"
  prompts:
    system: "You handle billing."
"""


GLYPH_AGENT = """\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: glyphic
spec:
  model:
    primary: {provider: ollama, model: "llama3.1:8b"}
  orchestration:
    pattern: glyph
  program: |
    step greet: say "hello"
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def member_agent(url: str, name: str, description: str) -> str:
    """A specialist agent in upstream's minimal shape, on the scripted server."""
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: {name}
spec:
  identity:
    description: "{description}"
  model:
    primary: {{provider: openai_compat, model: scripted, endpoint: "{url}"}}
  prompts:
    system: "You are the {name}."
"""


def coordinator_agent(url: str, pattern: str, name: str = "project-manager") -> str:
    """Upstream's multi-agent page: a supervisor (or swarm) whose members are its agent
    tools, with no ``workers`` / ``agents`` list."""
    return f"""\
apiVersion: astromesh/v1
kind: Agent
metadata:
  name: {name}
spec:
  model:
    primary: {{provider: openai_compat, model: scripted, endpoint: "{url}"}}
  orchestration:
    pattern: {pattern}
    max_iterations: 10
  tools:
    - name: researcher
      type: agent
      agent: research-agent
      description: "Research a topic and return findings"
    - name: writer
      type: agent
      agent: writing-agent
      description: "Write content based on research findings"
"""


def write_team(folder: Path, url: str, pattern: str) -> None:
    """The coordinator and its two members."""
    write(folder, "research-agent.agent.yaml", member_agent(url, "research-agent", "Finds facts"))
    write(folder, "writing-agent.agent.yaml", member_agent(url, "writing-agent", "Writes prose"))
    write(folder, "project-manager.agent.yaml", coordinator_agent(url, pattern))


TEMPLATE = """\
apiVersion: astromesh/v1
kind: AgentTemplate
metadata:
  name: front-desk
  version: "1.0.0"
  category: hospitality
  tags: [hotel, concierge]
template:
  display_name: "Front Desk"
  description: "Answers guests for a hotel"
  recommended_channels:
    - channel: whatsapp
      reason: "Guests write from their phones"
  variables:
    - key: hotel_name
      label: "Your hotel's name"
      required: true
    - key: model_endpoint
      label: "Where the model is served"
      default: "http://127.0.0.1:9"
    - key: checkout_time
      label: "Checkout time"
      placeholder: "11:00"
  agent_config:
    apiVersion: astromesh/v1
    kind: Agent
    metadata:
      name: "{{hotel_name|slugify}}-desk"
      labels:
        template: front-desk
    spec:
      identity:
        display_name: "{{hotel_name}} Front Desk"
        role: "Receptionist"
      model:
        primary:
          provider: openai_compat
          model: scripted
          endpoint: "{{model_endpoint}}"
          temperature: 0.2
      prompts:
        system: |
          You are {{ agent.display_name }} at {{hotel_name}}. Checkout is at {{checkout_time}}.
      orchestration:
        pattern: react
        max_iterations: 4
      memory:
        conversational:
          backend: in_memory
          max_messages: 20
"""
