"""Workflows on AWS: one Step Functions Standard machine that interprets every stored
workflow (docs/workflows.md, "On AWS").

- :mod:`.definition`: the machine's ASL (``build_workflow_definition``);
- :mod:`.driver` and :mod:`.worker`: its Lambda side (``functions/workflow_step``, and the
  tool steps of ``functions/tool_executor``);
- :mod:`.machine` and :mod:`.executor`: the API's side (start an execution, answer a task
  token), the ``stepfunctions`` executor of :class:`~astromesh.workflows.engine.WorkflowEngine`.

Nothing is imported here, so a Lambda handler loads only the half it needs.
"""
