"""The console's usage view, end to end in headless Chromium (the same set-up as
``test_console.py``): after runs of two agents, the tables by day and by agent show what
``GET /v1/usage`` sums for the key's tenant, and a run made in the console is counted as soon
as it ends. Another tenant's runs never show."""

from __future__ import annotations

import httpx

from astromesh.auth import Role
from tests.channels.conftest import keys_of
from tests.channels.test_console import browser, serve, write_priced_agent  # noqa: F401
from tests.support.model_servers import Reply


async def _rows(page, table: str) -> dict[str, list[str]]:
    cells = await page.eval_on_selector_all(
        f"#{table} tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    return {row[0]: row[1:] for row in cells}


async def test_the_usage_view_shows_the_tenants_spending_by_day_and_agent(
    agents_dir,
    make_app,
    serve,  # noqa: F811
    browser,  # noqa: F811
    openai_server,
):
    write_priced_agent(agents_dir, openai_server.url)
    app = make_app()
    keys = await keys_of(app)
    acme = (await keys.issue("acme", ["*"], role=Role.USER)).plaintext
    globex = (await keys.issue("globex", ["*"], role=Role.USER)).plaintext
    base = await serve(app)
    openai_server.push(
        Reply("one", tokens_in=40, tokens_out=10),
        Reply("two", tokens_in=20, tokens_out=5),
        Reply("three", tokens_in=10, tokens_out=2),
        Reply("not acme's", tokens_in=900, tokens_out=900),
    )
    for key, agent in ((acme, "helper"), (acme, "helper"), (acme, "other"), (globex, "other")):
        async with httpx.AsyncClient(base_url=base, headers={"x-api-key": key}) as client:
            ran = await client.post(f"/v1/agents/{agent}/run", json={"query": "hi"})
            assert ran.json()["status"] == "succeeded", ran.text
    async with httpx.AsyncClient(base_url=base, headers={"x-api-key": acme}) as client:
        expected = (await client.get("/v1/usage", params={"group_by": "agent"})).json()

    page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    await page.goto(base + "/")
    await page.wait_for_selector("#usage-total.error")  # no key yet: the API says 401
    assert "401" in await page.text_content("#usage-total")

    await page.fill("#api-key", acme)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_selector("#usage-by-agent tbody tr")

    shown = await _rows(page, "usage-by-agent")
    assert set(shown) == {"helper", "other"}
    for group in expected["groups"]:
        runs, tokens_in, tokens_out, _usd = shown[group["agent"]]
        assert [int(runs), int(tokens_in), int(tokens_out)] == [
            group["runs"],
            group["tokens_in"],
            group["tokens_out"],
        ]
    assert shown["helper"] == ["2", "60", "15", "$0.000300"]  # 2.5 and 10 USD per million
    (day_row,) = (await _rows(page, "usage-by-day")).values()
    assert day_row[:3] == ["3", "70", "17"]
    assert "tenant acme" in await page.text_content("#usage-total")

    # A run in the console is counted once it ends.
    openai_server.push(Reply("four", tokens_in=5, tokens_out=1))
    await page.wait_for_selector("#connection.on")
    await page.fill("#query", "one more")
    await page.press("#query", "Enter")
    await page.wait_for_function(
        "document.querySelector('#usage-by-day tbody tr td:nth-child(2)').textContent === '4'"
    )
    (day_row,) = (await _rows(page, "usage-by-day")).values()
    assert day_row[:3] == ["4", "75", "18"]
    await page.screenshot(path="/tmp/astromesh-console-usage.png", full_page=True)

    # A window that ends before today holds nothing.
    await page.fill("#usage-to", "2020-01-01")
    await page.dispatch_event("#usage-to", "change")
    await page.wait_for_function("!document.querySelector('#usage-by-day tbody tr')")
    assert "0 run(s)" in await page.text_content("#usage-total")
