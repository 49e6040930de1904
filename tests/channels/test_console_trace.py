"""The console's trace waterfall, end to end in headless Chromium (the same set-up as
``test_console.py``): when a run made in the console ends, its spans from
``GET /v1/traces/{run_id}`` are drawn as a waterfall with durations, tokens and cost, and a
tool call's arguments and result when content capture is on."""

from __future__ import annotations

from astromesh.stores.memory import MemoryBackend
from astromesh.telemetry.content import CAPTURE_ENV
from tests.channels.conftest import keys_of
from tests.channels.test_console import browser, serve, write_priced_agent  # noqa: F401
from tests.support.model_servers import Reply


async def test_the_console_draws_the_runs_trace_waterfall(
    agents_dir,
    make_app,
    serve,  # noqa: F811
    browser,  # noqa: F811
    openai_server,
):
    write_priced_agent(agents_dir, openai_server.url)
    app = make_app(state=MemoryBackend(), env={CAPTURE_ENV: "true"})
    key = (await (await keys_of(app)).issue("acme", ["*"])).plaintext
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 20, "b": 22})], tokens_in=12, tokens_out=4),
        Reply("The answer is 42.", tokens_in=10, tokens_out=10),
    )
    base = await serve(app)
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(base + "/")
    await page.fill("#api-key", key)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_selector("#connection.on")
    await page.select_option("#agent", "helper")

    await page.fill("#query", "What is 20 + 22?")
    await page.press("#query", "Enter")
    await page.wait_for_selector('#waterfall li[data-name="execute_tool add"]')

    rows = await page.eval_on_selector_all(
        "#waterfall li",
        "ls => ls.map(l => [l.dataset.name, Number(l.dataset.depth),"
        " l.querySelector('.span-label').textContent,"
        " parseFloat(l.querySelector('.span-bar').style.width)])",
    )
    names = [row[0] for row in rows]
    assert names[0] == "invoke_agent helper" and rows[0][1] == 0
    assert rows[0][3] > 90  # the root spans the whole run
    depth = {name: d for name, d, _, _ in rows}
    assert depth["astromesh.act"] == 1 and depth["execute_tool add"] == 2
    chats = [label for name, _, label, _ in rows if name == "chat scripted"]
    assert len(chats) == 2 and "12/4 tok" in chats[0] and "ms" in chats[0]
    assert "$" in chats[0]  # the priced call's cost
    summary = await page.text_content("#trace-summary")
    run_id = await page.text_content("#run-id")
    assert run_id.removeprefix("run_") in summary and "22 in / 14 out" in summary
    tool = await page.text_content('#waterfall li[data-name="execute_tool add"] .span-io')
    assert '"a": 20' in tool and "result: 42" in tool
    await page.screenshot(path="/tmp/astromesh-console-trace.png", full_page=True)
    assert not [e for e in errors if "401" not in e], errors  # 401s: before the key was typed
