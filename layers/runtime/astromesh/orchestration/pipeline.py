"""Pipeline: a fixed sequence of stages, each stage's output the next one's input.

YAML (``spec.orchestration``)::

    pattern: pipeline
    stages:                      # required, run in order; names unique
      - name: research
        agent: researcher        # another agent: a child run whose answer is the output
      - name: retrieve
        tool: search_docs        # or one of spec.tools, called with {"query": <input>}
      - name: summary
        prompt: |                # or a Jinja2 template run on this agent's model
          Summarise for {{ query }}: {{ input }}
    max_iterations: 10           # each agent stage uses one iteration
    timeout_seconds: 120

A ``prompt`` stage is rendered in the sandbox with ``input`` (the previous stage's output, the
query for the first stage), ``query`` (the run's query), ``stages`` (outputs so far, by stage
name), ``context``, ``now`` and ``today``; the rendered text is sent as the user message after
this agent's system prompt. Consecutive prompt stages run within one step; an ``agent`` stage
is an ``Act`` on that agent's tool (added automatically at build time), a ``tool`` stage an
``Act`` on the named tool of ``spec.tools`` with ``{"query": <input>}`` (a ``rag`` tool, an
``agent`` or webhook tool, any tool taking ``query``; it must be permitted), so on Step
Functions both run in ``tool_executor``, and tool-result guardrails screen the output before
the next stage sees it. Retrieve-then-answer this way works with any model, where ReAct needs
one that decides to call the tool. The last stage's output is the answer; a failing agent or
tool stage fails the run (code ``stage_failed``) naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from astromesh.config.orchestration import PipelineStage
from astromesh.models.types import Message, ToolCall
from astromesh.orchestration.base import Act, Decision, Fail, Finish, Pattern, StepContext
from astromesh.orchestration.common import agent_call, system_messages
from astromesh.orchestration.state import PatternState
from astromesh.prompts.render import PromptTemplate, base_variables, sample_variables
from astromesh.runs.state import ActionResult, RunState


class _State(PatternState):
    index: int = 0
    """The stage to run next."""
    outputs: dict[str, str] = Field(default_factory=dict)
    failure: str | None = None
    """Why the agent or tool stage at ``index`` failed (set by ``observe``)."""


class PipelinePattern(Pattern):
    name = "pipeline"

    def __init__(self, stages: Sequence[PipelineStage]) -> None:
        self.stages = list(stages)
        # Compiled and trial-rendered once, at build time, so a template error or a template
        # over the sandbox's budget surfaces before any run.
        self._templates: dict[str, PromptTemplate] = {}
        for index, stage in enumerate(self.stages):
            if stage.prompt is None:
                continue
            template = PromptTemplate(
                f"stage {stage.name!r}",
                stage.prompt,
                field=f"spec.orchestration.stages[{index}].prompt",
            )
            template.check(sample_variables())
            self._templates[stage.name] = template

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        state = _State.load(run)
        while state.index < len(self.stages):
            stage = self.stages[state.index]
            if state.failure is not None:
                target = stage.agent if stage.agent is not None else stage.tool
                return Fail(
                    f"pipeline stage {stage.name!r} ({stage.kind} {target!r}) failed: "
                    f"{state.failure}",
                    code="stage_failed",
                )
            stage_input = self._input(run, state)
            call_id = f"stage_{state.index}_{stage.name}"
            call: ToolCall | None = None
            if stage.agent is not None:
                call = agent_call(ctx, stage.agent, stage_input, call_id=call_id)
            elif stage.tool is not None:
                call = ToolCall(id=call_id, name=stage.tool, arguments={"query": stage_input})
            if call is not None:
                run.messages.append(Message.assistant("", tool_calls=[call]))
                state.save(run)
                return Act([call])
            output = await self._prompt_stage(run, ctx, state, stage)
            self._complete(run, state, stage, output)
        state.save(run)
        return Finish(state.outputs[self.stages[-1].name])

    async def _prompt_stage(
        self, run: RunState, ctx: StepContext, state: _State, stage: PipelineStage
    ) -> str:
        rendered = self._templates[stage.name].render(
            base_variables(
                input=self._input(run, state),
                query=run.query,
                stages=dict(state.outputs),
                context=run.context or {},
            )
        )
        last = state.index == len(self.stages) - 1
        response = await self.call_model(
            run,
            ctx,
            [*system_messages(run), Message.user(rendered)],
            stream_tokens=last,
        )
        run.messages += [Message.user(rendered), Message.assistant(response.content)]
        return response.content

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        super().observe(run, results)
        state = _State.load(run)
        stage = self.stages[state.index]
        for result in results:
            if result.ok:
                self._complete(run, state, stage, result.content)
            else:
                state.failure = result.content
        state.save(run)

    def _input(self, run: RunState, state: _State) -> str:
        if state.index == 0:
            return run.query
        return state.outputs[self.stages[state.index - 1].name]

    def _complete(self, run: RunState, state: _State, stage: PipelineStage, output: str) -> None:
        run.record(
            "stage",
            name=stage.name,
            index=state.index,
            kind=stage.kind,
            output=output,
        )
        state.outputs[stage.name] = output
        state.index += 1
