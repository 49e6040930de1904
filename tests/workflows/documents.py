"""Workflow documents the tests share (upstream's example shape and small variants)."""

from __future__ import annotations

import yaml

from astromesh.config.workflow import WorkflowDocument

HEADER = """apiVersion: astromesh/v1
kind: Workflow
metadata:
  name: {name}
spec:
"""

LEAD_QUALIFICATION = """apiVersion: astromesh/v1
kind: Workflow
metadata:
  name: lead-qualification
  version: "0.1.0"
  namespace: default
spec:
  description: "Qualify incoming leads through research and scoring"
  trigger: api
  timeout_seconds: 300
  steps:
    - name: research
      agent: web-researcher
      input: "{{ trigger.query }}"
    - name: qualify
      agent: sales-qualifier
      input: "{{ steps.research.output }}"
      retry:
        max_attempts: 3
        backoff: exponential
        initial_delay_seconds: 0.01
      timeout_seconds: 60
      on_error: log-and-skip
    - name: decide
      switch:
        - when: "{{ steps.qualify.output.data.score > 7 }}"
          goto: notify
        - default: true
          goto: log-and-skip
    - name: notify
      agent: email-composer
      input: "{{ steps.qualify.output }}"
    - name: log-and-skip
      when: "{{ steps.notify.status != 'succeeded' }}"
      tool: cache_store
      arguments:
        action: set
        key: "skipped_{{ trigger.id }}"
        value: "{{ steps.qualify.output }}"
  observability:
    collector: internal
"""


def workflow(text: str) -> WorkflowDocument:
    """The Workflow of ``text`` validated on its own (the agents it names need not exist:
    the interpreter never looks them up; the loader's cross-checks are tested apart)."""
    data = yaml.safe_load(text)
    data["spec"].pop("observability", None)
    return WorkflowDocument.model_validate(data)


def steps(body: str, name: str = "w") -> str:
    """A workflow document with ``body`` (indented list items) as its steps."""
    return HEADER.format(name=name) + "  steps:\n" + body
