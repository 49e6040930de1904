"""The console's approvals view in headless Chromium (the set-up of
``tests/channels/test_console.py``): a workflow run waiting for a person is listed with its
prompt (shown as text, whatever the run put in it), a key that may not decide is told why,
and approving from the page completes the run."""

from __future__ import annotations

import httpx

from astromesh.auth import Role
from tests.channels.conftest import keys_of
from tests.channels.test_console import browser, serve  # noqa: F401
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply
from tests.workflows.test_rest import APPROVAL_WORKFLOW

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


async def test_the_console_lists_and_approves_a_pending_approval(
    agents_dir,
    make_app,
    serve,  # noqa: F811
    browser,  # noqa: F811
    openai_server,
):
    write_agent(agents_dir, "writer", model=primary(openai_server.url))
    app = make_app()
    keys = await keys_of(app)
    dev = (await keys.issue("acme", ["*"], role=Role.DEVELOPER)).plaintext
    user = (await keys.issue("acme", ["*"], role=Role.USER)).plaintext
    base = await serve(app)
    openai_server.push(Reply(HOSTILE))
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": dev}) as client:
        registered = await client.post(
            "/v1/workflows/register", json={"workflow": APPROVAL_WORKFLOW}
        )
        assert registered.status_code == 201, registered.text
        started = await client.post("/v1/workflows/outreach/run", json={"query": "ACME"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

    page = await browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
    await page.goto(base + "/")
    await page.fill("#api-key", user)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_selector(f"#approvals-list li[data-run-id='{run_id}']")
    prompt = await page.text_content("#approvals-list .prompt")
    assert prompt == f"Send this? {HOSTILE}"  # as text: no element was made of it
    assert await page.query_selector("#approvals-list img") is None
    assert await page.title() != "pwned"

    await page.fill("#approvals-as", "ana")
    await page.click("#approvals-list button.approve")  # a user key may not decide
    await page.wait_for_selector("#approvals-status.error")
    assert "403" in await page.text_content("#approvals-status")

    await page.fill("#api-key", dev)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_selector(f"#approvals-list li[data-run-id='{run_id}']")
    await page.fill("#approvals-comment", "looks fine")
    await page.click("#approvals-list button.approve")
    await page.wait_for_function(
        "document.querySelector('#approvals-status').textContent.includes('completed')"
    )
    assert await page.query_selector("#approvals-list li") is None
    await page.screenshot(path="/tmp/astromesh-console-approvals.png", full_page=True)

    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": dev}) as client:
        record = (await client.get(f"/v1/workflows/runs/{run_id}")).json()
    assert record["state"] == "completed"
    assert record["steps"]["review"]["output"] == {
        "approved": True,
        "approver": "ana",
        "comment": "looks fine",
    }
