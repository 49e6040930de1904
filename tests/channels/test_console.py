"""The web console at ``/``, end to end in headless Chromium.

A real uvicorn server on 127.0.0.1 serves the app; the agent answers from a scripted model
server (a tool call, then a streamed answer) priced by a ProviderConfig, so the console has
steps, a tool call, usage and a cost to show. The browser is Debian's ``chromium`` driven
by Playwright (never a browser ``playwright install`` downloads). Without it the test is
skipped, saying what to install, on a developer's machine; in CI (``CI`` set), where
``.ci/run`` installs it, its absence is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
import yaml

from tests.channels.conftest import keys_of
from tests.support.agents import python_tool, write_agent
from tests.support.model_servers import Reply

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path("/tmp/astromesh-console.png")


def chromium_path() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        message = (
            "the console test needs Debian's Chromium at /usr/bin/chromium: run"
            " 'apt-get update && apt-get install -y chromium' (not 'playwright install')"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    path = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the console test needs Playwright: pip install playwright", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    """Serve an app with uvicorn on a free port in this event loop; ``http://`` base URLs."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app) -> str:
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


def write_priced_agent(folder: Path, url: str) -> None:
    providers = {
        "apiVersion": "astromesh/v1",
        "kind": "ProviderConfig",
        "metadata": {"name": "local"},
        "spec": {
            "providers": {
                "scripted": {
                    "type": "openai_compat",
                    "endpoint": url,
                    "models": ["scripted"],
                    "pricing": {"scripted": {"input_per_million": 2.5, "output_per_million": 10}},
                }
            }
        },
    }
    (folder / "providers.yaml").write_text(yaml.safe_dump(providers))
    write_agent(
        folder,
        "helper",
        model={"primary": {"provider": "scripted", "model": "scripted"}},
        tools=[python_tool("add", "add")],
    )
    write_agent(folder, "other", model={"primary": {"provider": "scripted", "model": "scripted"}})


async def test_the_console_chats_and_shows_steps_usage_and_cost(
    agents_dir, make_app, serve, browser, openai_server
):
    write_priced_agent(agents_dir, openai_server.url)
    app = make_app()
    issued = await (await keys_of(app)).issue("acme", ["helper"], label="console test")
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 20, "b": 22})]),
        Reply("The answer is 42, as the calculator says.", chunk_delay=0.04),
    )
    base = await serve(app)
    # bypass_csp: the page's policy forbids eval, which Playwright's wait_for_function uses.
    page = await browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    await page.goto(base + "/")
    assert await page.title() == "Astromesh console"
    # Keys exist, so the API is closed: without one the console says why.
    await page.wait_for_selector(".msg.error")
    assert "401" in await page.text_content(".msg.error")

    await page.fill("#api-key", issued.plaintext)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_function("document.querySelector('#agent').options.length > 0")
    assert await page.eval_on_selector_all("#agent option", "os => os.map(o => o.value)") == [
        "helper"
    ]  # the key may use only this one
    await page.wait_for_selector("#connection.on")
    assert await page.query_selector(".msg.error") is None  # the 401 notice is gone

    await page.fill("#query", "What is 20 + 22?")
    await page.press("#query", "Enter")
    # Tokens arrive one by one: the bubble has text while still streaming.
    await page.wait_for_function(
        "(() => { const b = document.querySelector('.msg.assistant.streaming');"
        " return b && b.textContent.length > 0; })()"
    )
    await page.wait_for_selector(".msg.assistant:not(.streaming)")
    bubble = await page.text_content(".msg.assistant")
    assert bubble.startswith("The answer is 42, as the calculator says.")
    assert "succeeded" in bubble and "22 in / 14 out" in bubble

    await page.wait_for_function("document.querySelectorAll('#steps li.model_call').length == 2")
    steps = await page.eval_on_selector_all("#steps li", "ls => ls.map(l => l.textContent)")
    assert [s.split(" · ")[0].split(". ", 1)[1] for s in steps] == [
        "prepare",
        "model_call",
        "tool_call",
        "model_call",
    ]
    assert any("add ok" in s and '"a": 20' in s for s in steps)
    assert "tools: add" in steps[0]
    assert await page.text_content('#usage dd[data-field="tokens_in"]') == "22"
    assert await page.text_content('#usage dd[data-field="cost"]') == "$0.000195"
    assert "scripted / scripted" in await page.text_content("#by-model")
    run_id = await page.text_content("#run-id")
    assert run_id.startswith("run_") or len(run_id) > 8

    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The key is kept in the browser, not on the server.
    await page.reload()
    assert await page.input_value("#api-key") == issued.plaintext
    assert await page.evaluate("localStorage.getItem('astromesh.console.apiKey')") == (
        issued.plaintext
    )
    await page.wait_for_selector("#connection.on")
    assert not [e for e in console_errors if "401" not in e], console_errors
    assert len(openai_server.requests) == 2


async def test_a_run_can_be_cancelled_from_the_console(
    agents_dir, make_app, serve, browser, openai_server
):
    write_priced_agent(agents_dir, openai_server.url)
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})], delay=0.6), Reply("not reached")
    )
    base = await serve(make_app())  # no key exists: the development server runs open
    page = await browser.new_page(bypass_csp=True)
    await page.goto(base + "/")
    await page.wait_for_selector("#connection.on")

    await page.fill("#query", "slow one")
    await page.click("#send")
    await page.wait_for_selector("#cancel:not([disabled])")
    await page.click("#cancel")
    await page.wait_for_selector(".msg.assistant:not(.streaming)")

    assert "cancelled" in await page.text_content(".msg.assistant")
    assert await page.text_content("#run-status") == "cancelled"


async def test_the_console_files_are_served_with_a_strict_policy(make_app, client_for):
    client = client_for(make_app())
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "https://" not in page.text  # nothing from a CDN
    script = await client.get("/console/console.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/console/../app.py")).status_code == 404
    assert (await client.get("/console/secrets.txt")).status_code == 404
