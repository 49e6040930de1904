"""Templates in agent documents are hostile input: the bounded sandbox refuses or stops them.

A system prompt of ``{{ (9**(9**8)) % 7 }}`` used to block the event loop for 91 s when the
agent was registered (Jinja folds constant expressions while compiling) and 89 s on every run.
These tests drive hostile templates through the sandbox directly, through ``POST /v1/agents``
over real HTTP (with ``/v1/health`` answering meanwhile), and through a run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SecurityError

from astromesh.prompts.render import PromptTemplate, base_variables, sample_variables
from astromesh.prompts.sandbox import (
    MAX_OUTPUT_CHARS,
    RENDER_BUDGET_SECONDS,
    TemplateLimitError,
    compile_template,
    render_bounded,
    shared_budget,
)
from tests.channels.conftest import agents_dir, client_for, make_app
from tests.support.agents import agent_document, primary, write_agent
from tests.support.model_servers import Reply

__all__ = ["agents_dir", "client_for", "make_app"]  # fixtures shared with the channel tests

SLACK_SECONDS = 0.75
"""Allowed beyond the render budget: one bounded operation past the deadline, plus a loaded
CI machine."""

POWER_BOMB = "{{ (9**(9**8)) % 7 }}"
LOOP_BOMB = "{% for a in range(9999) %}{% for b in range(9999) %}{{ a }}{% endfor %}{% endfor %}"
SLOW_STEPS = (
    "{% for a in range(9999) %}{{ ('x' * 200000) | replace('x', 'y') | length }}{% endfor %}"
)
"""Runs until a time budget stops it, each step a few ms of string work."""


def render(source: str, **variables: Any) -> str:
    return render_bounded(compile_template(source), sample_variables(**variables))


def refused(source: str, **variables: Any) -> tuple[TemplateLimitError, float]:
    started = time.perf_counter()
    with pytest.raises(TemplateLimitError) as caught:
        render(source, **variables)
    return caught.value, time.perf_counter() - started


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[FastAPI], Awaitable[str]]]:
    """Serve an app with uvicorn on a free port in this event loop; yields ``http://`` URLs."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: FastAPI) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        servers.append((server, task))
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# -- the sandbox on its own ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "limit"),
    [
        (POWER_BOMB, "power result over 4096 bits"),
        ("{{ 2 ** 5000 }}", "power result over 4096 bits"),
        ("{{ 3 ** 2600 }}", "power result over 4096 bits"),
        ("{% set n = 2 ** 3000 %}{{ n * n }}", "multiplication result over 4096 bits"),
        (LOOP_BOMB, "render budget"),
        (
            "{% for a in range(9999) %}{% for b in range(9999) %}{% endfor %}{% endfor %}",
            "render budget",
        ),
        ("{{ 'x' * 999999999 }}", "string repetition result over 262144 characters"),
        ("{{ [1, 2] * 999999999 }}", "list repetition result over 65536 items"),
        ("{{ range(999999999) | list }}", "over the limit of 10000"),
        ("{{ range(20000) | length }}", "over the limit of 10000"),
        ("{{ 'x' | center(999999999) }}", "argument 999999999 is over the limit of 65536"),
        ("{{ 'x' | indent(999999999) }}", "over the limit of 65536"),
        ("{{ 'x' | truncate(999999999) }}", "over the limit of 65536"),
        ("{{ range(10) | batch(999999999) | list }}", "over the limit of 65536"),
        ("{{ range(10) | slice(999999999) | list }}", "over the limit of 65536"),
        ("{{ 'a b' | wordwrap(999999999) }}", "over the limit of 65536"),
        ("{{ ('x' * 60000) | wordwrap(1) }}", "over 10000 lines"),
        ("{{ ('x\n' * 60000) | indent(60) }}", "filter 'indent' result over 262144"),
        ("{{ ('a' * 200000) | replace('a', 'aaaa') }}", "filter 'replace' result over 262144"),
        ("{{ ('a' * 200000).replace('a', 'aaaa') }}", "'str.replace' result over 262144"),
        ("{{ range(10000) | map('center', 60000) | join }}", "over 65536 items or 262144"),
        ("{{ ''.join(range(10000) | map('center', 60000)) }}", "over 65536 items or 262144"),
        ("{{ range(9000) | list | tojson(60000) }}", "filter 'tojson' result over 262144"),
        ("{{ '%099999999d' % 1 }}", "field width or precision over the limit of 65536"),
        ("{{ '%.999999999f' % 1 }}", "field width or precision over the limit of 65536"),
        ("{{ '%*d' % (999999999, 1) }}", "argument 999999999 is over the limit of 65536"),
        ("{{ '%(a)60000s' * 100 % {'a': 1} }}", "% formatting result over 262144"),
        ("{{ '%099999999d' | format(1) }}", "over the limit of 65536"),
        ("{{ '{:>999999999}'.format(1) }}", "field width or precision over the limit of 65536"),
        ("{{ '{:{w}}'.format(1, w=999999999) }}", "over the limit of 65536"),
        ("{{ '{a:>999999999}'.format_map({'a': 1}) }}", "over the limit of 65536"),
        ("{{ 'x'.ljust(999999999) }}", "'str.ljust' argument 999999999 is over the limit"),
        ("{{ 'x'.zfill(999999999) }}", "'str.zfill' argument 999999999 is over the limit"),
        ("{{ 'x'.center(999999999) }}", "'str.center' argument 999999999 is over the limit"),
        ("{{ ('\t' * 60000).expandtabs(60000) }}", "'str.expandtabs' result over 262144"),
        ("{{ 'x'.encode() * 999999999 }}", "string repetition result over 262144"),
        ("{{ 'x'.encode().ljust(999999999) }}", "'bytes.ljust' argument 999999999 is over"),
        ("{{ ('x' | safe).ljust(999999999) }}", "'Markup.ljust' argument 999999999 is over"),
        ("{{ ('x' | e).center(999999999) }}", "'Markup.center' argument 999999999 is over"),
        ("{{ (1).to_bytes(999999999, 'big') }}", "'int.to_bytes' argument 999999999 is over"),
        ("{{ '%099999999d'.encode() % 1 }}", "field width or precision over the limit"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "string concatenation result over 262144",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "string concatenation result over 262144",
        ),
        (
            "{% set ns = namespace(a=[1]) %}{% for i in range(64) %}"
            "{% set ns.a = [ns.a, ns.a] %}{% endfor %}",
            "list or dict literal result over 262144 characters",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}",
            "over 262144 characters",
        ),
        ("{% macro f() %}{{ f() }}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
        ("{% for i in range(9) recursive %}{{ loop(range(9)) }}{% endfor %}", "recursion"),
        ("{{ 'x' * 200000 }}{{ 'y' * 200000 }}", "template output over 262144 characters"),
        ("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "nests too deeply"),
        ("{% if 1 %}" * 150 + "{% endif %}" * 150, "nests too deeply"),
    ],
)
def test_hostile_templates_are_refused_quickly_naming_the_limit(source: str, limit: str) -> None:
    error, elapsed = refused(source)
    assert limit in error.message
    assert error.code == "template_limit"
    assert elapsed < RENDER_BUDGET_SECONDS + SLACK_SECONDS


def test_compiling_a_power_bomb_does_not_fold_it() -> None:
    # Jinja folds constant expressions while compiling: with a plain sandbox this line alone
    # took 91 s. Intercepted operators are never folded.
    started = time.perf_counter()
    template = compile_template(POWER_BOMB)
    assert time.perf_counter() - started < 0.5
    with pytest.raises(TemplateLimitError):
        render_bounded(template, {})


def test_a_loop_bomb_stops_at_the_time_budget_when_steps_are_slow() -> None:
    # Each step here is a few ms of string work: the wall-clock deadline stops it, not steps.
    error, elapsed = refused(SLOW_STEPS)
    assert "250 ms render budget" in error.message
    assert elapsed < RENDER_BUDGET_SECONDS + SLACK_SECONDS


def test_a_document_budget_is_spent_by_its_renders_together() -> None:
    # The first render stops at its own 250 ms; the second has only what is left of the
    # document's 300 ms, and says whose budget it ran out of.
    with shared_budget(0.3):
        with pytest.raises(TemplateLimitError, match="250 ms render budget"):
            render_bounded(compile_template(SLOW_STEPS), {})
        with pytest.raises(TemplateLimitError, match="render budget together"):
            render_bounded(compile_template(SLOW_STEPS), {})


def test_a_document_budget_counts_render_time_only() -> None:
    # Time between the renders (validating other fields, a loaded machine) is not the
    # templates' doing: an honest document is not refused for it.
    with shared_budget(0.2):
        assert render_bounded(compile_template("Hello {{ name }}"), {"name": "a"}) == "Hello a"
        time.sleep(0.3)
        assert render_bounded(compile_template("Bye {{ name }}"), {"name": "b"}) == "Bye b"


def test_the_sandbox_still_keeps_templates_away_from_python_internals() -> None:
    with pytest.raises(SecurityError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        render("{{ cycler.__init__.__globals__ }}")
    # Immutable: a template cannot grow a list or dict in place.
    with pytest.raises(SecurityError):
        render("{% set l = [1] %}{{ l.extend(l) }}")
    with pytest.raises(SecurityError):
        render("{% set d = {} %}{{ d.update({'a': 1}) }}")
    with pytest.raises(SecurityError):
        render("{{ 'abc'.translate({97: 'x' * 9000}) }}")


def test_ordinary_prompts_still_render() -> None:
    source = (
        "You are {{ agent.display_name }} ({{ agent.name }}). Today is {{ today }}.\n"
        "{% for tool in tools %}- {{ tool.name | upper }}: {{ tool.description | truncate(40) }}\n"
        "{% endfor %}"
        "{% for i in range(3) %}{{ loop.index }}{% if not loop.last %}, {% endif %}{% endfor %}\n"
        "{{ '%-5s|' % 'ab' }}{{ '{:>4}'.format(7) }} {{ 2 ** 10 }} {{ 6 * 7 }} {{ 'a' ~ 'b' }}"
        " {{ [1, 2] + [3] }} {{ 'ab' * 2 }} {{ {'k': 'v'} | tojson }}"
        " {{ context.get('who', 'nobody') | center(9) }}"
        " {{ ['x', 'y'] | join(', ') }} {{ 'a b c' | wordwrap(3) | length }}"
        " {{ range(5) | map('string') | join('') }} {{ 'x\ny' | indent(2) }}"
        " {{ 'a-b' .replace('-', '+') }} {{ '%s' | format('f') }}"
    )
    text = render(
        source,
        today="2030-01-02",
        tools=[{"name": "search", "description": "Looks things up " * 10}],
        context={"who": "me"},
    )
    assert text.startswith("You are Agent (agent). Today is 2030-01-02.\n- SEARCH: Looks")
    assert "1, 2, 3\n" in text
    assert 'ab   |   7 1024 42 ab [1, 2, 3] abab {"k": "v"}     me    x, y 5' in text
    assert "01234" in text and "x\n  y" in text and "a+b f" in text


def test_prompt_template_renders_with_the_pipeline_variables() -> None:
    template = PromptTemplate("t", "{{ today }}: {% for s in stages %}{{ s }} {% endfor %}")
    variables = base_variables(input="i", query="q", stages={"a": "1"}, context={})
    assert template.render(variables) == f"{variables['today']}: a"


def test_a_prompt_template_names_its_field_in_refusals() -> None:
    template = PromptTemplate("helper.system", LOOP_BOMB, field="spec.prompts.system")
    with pytest.raises(TemplateLimitError) as caught:
        template.check()
    assert caught.value.message.startswith("spec.prompts.system: template exceeds")
    with pytest.raises(TemplateLimitError, match=r"spec\.prompts\.system: power result"):
        PromptTemplate("helper.system", POWER_BOMB, field="spec.prompts.system").check()


def test_a_trial_render_ignores_errors_a_real_run_may_not_have() -> None:
    # ``context`` comes from the caller: missing here is no reason to refuse the agent.
    PromptTemplate("t", "{{ context.n * 2 }} {{ range(context.n) | list }}").check()


# -- over HTTP -------------------------------------------------------------------------------


def _posted(system: str) -> dict[str, Any]:
    document = agent_document("bomb", model=primary("http://127.0.0.1:9/v1"))
    document["spec"]["prompts"]["system"] = system
    return document


@pytest.mark.parametrize("system", [POWER_BOMB, LOOP_BOMB])
async def test_a_template_bomb_is_a_fast_422_while_health_keeps_answering(
    make_app: Any, serve: Any, system: str
) -> None:
    base = await serve(make_app())
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/v1/health")).status_code == 200
        posted = asyncio.Event()
        health_times: list[float] = []

        async def poll_health() -> None:
            while not posted.is_set():
                started = time.perf_counter()
                response = await client.get("/v1/health")
                health_times.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.01)

        async def post() -> tuple[httpx.Response, float]:
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            try:
                response = await client.post("/v1/agents", json=_posted(system))
            finally:
                posted.set()
            return response, time.perf_counter() - started

        (response, elapsed), _ = await asyncio.gather(post(), poll_health())

    assert response.status_code == 422
    assert elapsed < 1.0
    error = response.json()["error"]
    assert error["code"] == "invalid_agent"
    [issue] = error["issues"]
    assert issue["field"] == "spec.prompts.system"
    assert issue["line"] is not None
    assert any(word in issue["message"] for word in ("power result", "render budget"))
    assert health_times and max(health_times) < 1.0
    # Nothing was registered.
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/v1/agents/bomb")).status_code == 404


async def test_a_pipeline_stage_bomb_is_refused_naming_the_stage(
    make_app: Any, client_for: Any
) -> None:
    document = agent_document(
        "staged",
        model=primary("http://127.0.0.1:9/v1"),
        orchestration={"pattern": "pipeline", "stages": [{"name": "s", "prompt": POWER_BOMB}]},
    )
    client = client_for(make_app())
    started = time.perf_counter()
    response = await client.post("/v1/agents", json=document)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 422
    [issue] = response.json()["error"]["issues"]
    assert issue["field"] == "spec.orchestration.stages[0].prompt"
    assert "power result over 4096 bits" in issue["message"]


async def test_many_templates_share_one_budget_per_document(make_app: Any, client_for: Any) -> None:
    # Each template alone stays under the 250 ms budget; together they would hold the event
    # loop for seconds at registration.
    slow = "{% for a in range(9999) %}{{ ('x' * 99999) | replace('x', 'y') | length }}{% endfor %}"
    document = agent_document("slow", model=primary("http://127.0.0.1:9/v1"))
    document["spec"]["prompts"]["templates"] = {f"t{i}": slow for i in range(40)}
    client = client_for(make_app())
    started = time.perf_counter()
    response = await client.post("/v1/agents", json=document)
    assert time.perf_counter() - started < 2.5
    assert response.status_code == 422
    assert "render budget" in response.json()["error"]["message"]


async def test_a_bomb_that_needs_run_context_fails_the_run_cleanly(
    agents_dir: Any, make_app: Any, client_for: Any, openai_server: Any
) -> None:
    # The trial render has no context, so this one passes registration; the run stops it.
    bomb = (
        "{% for a in range(context.n) %}{% for b in range(context.n) %}{{ a }}"
        "{% endfor %}{% endfor %}"
    )
    write_agent(agents_dir, model=primary(openai_server.url), prompts={"system": bomb})
    openai_server.push(Reply("never"))
    client = client_for(make_app())
    started = time.perf_counter()
    response = await client.post(
        "/v1/agents/helper/run", json={"query": "hi", "context": {"n": 9999}}
    )
    assert time.perf_counter() - started < RENDER_BUDGET_SECONDS + SLACK_SECONDS
    body = response.json()
    assert body["status"] == "failed"
    assert "spec.prompts.system: template exceeds" in body["error"]
    assert openai_server.requests == []
    # The same agent still serves an ordinary request.
    response = await client.post("/v1/agents/helper/run", json={"query": "hi", "context": {"n": 2}})
    assert response.json()["status"] == "succeeded"


async def test_an_ordinary_registered_prompt_still_renders(
    make_app: Any, client_for: Any, openai_server: Any
) -> None:
    openai_server.push(Reply("fine"))
    document = agent_document("plain", model=primary(openai_server.url))
    document["spec"]["prompts"]["system"] = (
        "Today is {{ today }}.{% for i in range(3) %} {{ i }}{% endfor %}"
    )
    client = client_for(make_app())
    assert (await client.post("/v1/agents", json=document)).status_code == 201
    run = (await client.post("/v1/agents/plain/run", json={"query": "q"})).json()
    assert run["answer"] == "fine"
    system = openai_server.requests[0]["messages"][0]["content"]
    assert system.startswith("Today is 20") and system.endswith(" 0 1 2")


# -- random hostile templates ----------------------------------------------------------------

_ATOMS = [
    "9", "99999", "(9 ** 99)", "'x'", "'ab' * 999", "range(9999)", "[1, 2] * 999",
    "ns.s", "ns.l", "'%0999d'", "'{:>999}'", "(ns.s ~ ns.s)", "[ns.l, ns.l]",
]  # fmt: skip
_OPERATORS = [" * ", " ** ", " + ", " ~ ", " % ", " // "]
_FILTERS = [
    "|center(99999)", "|indent(999)", "|join", "|list", "|replace('x', 'xxxx')",
    "|wordwrap(1)", "|tojson(99)", "|batch(999)|list", "|string", "|length", "|sum",
    "|map('string')|join(',')", "|format(9)", "|truncate(9)",
]  # fmt: skip


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    parts = [draw(st.sampled_from(_ATOMS))]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(st.sampled_from(_OPERATORS)), draw(st.sampled_from(_ATOMS))]
    expression = "(" + "".join(parts) + ")"
    return expression + "".join(draw(st.lists(st.sampled_from(_FILTERS), max_size=3)))


def _statements(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda e, b: f"{{% for x in {e} %}}{b}{{% endfor %}}", _expressions(), children),
        st.builds(lambda e: f"{{% set ns.s = {e} %}}", _expressions()),
        st.builds(lambda e: f"{{% set ns.l = {e} %}}", _expressions()),
        st.builds(lambda b: f"{{% set ns.s %}}{b}{b}{{% endset %}}", children),
        st.lists(children, min_size=2, max_size=3).map("".join),
    )


_TEMPLATES = st.recursive(_expressions().map(lambda e: f"{{{{ {e} }}}}"), _statements, max_leaves=6)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(body=_TEMPLATES)
def test_random_hostile_templates_never_run_past_the_budget(body: str) -> None:
    source = "{% set ns = namespace(s='x', l=[1]) %}" + body
    started = time.perf_counter()
    try:
        output = render_bounded(compile_template(source), sample_variables())
    except Exception:  # noqa: BLE001 - refused, over budget or a type error: fine, if fast
        output = ""
    assert time.perf_counter() - started < RENDER_BUDGET_SECONDS + SLACK_SECONDS
    assert len(output) <= MAX_OUTPUT_CHARS
