"""API keys (Bearer or x-api-key), agent sets, open development mode, tenant isolation."""

from __future__ import annotations

from astromesh.auth.base import parse_key
from tests.channels.conftest import keys_of
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply


async def test_open_until_a_key_exists(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    app = make_app()
    client = client_for(app)
    assert (await client.get("/v1/agents")).status_code == 200  # development mode

    await (await keys_of(app)).issue("acme", ["*"])

    refused = await client.get("/v1/agents")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/v1/health")).status_code == 200  # health stays open


async def test_required_auth_refuses_even_without_keys(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app(auth="required"))
    response = await client.get("/v1/agents")
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]["message"]


async def test_bearer_and_x_api_key_agent_sets_and_revocation(agents_dir, make_app, client_for):
    write_agent(agents_dir, "helper")
    write_agent(agents_dir, "secret")
    app = make_app(auth="required")
    keys = await keys_of(app)
    issued = await keys.issue("acme", ["helper"])
    client = client_for(app)

    bearer = {"authorization": f"Bearer {issued.plaintext}"}
    listing = await client.get("/v1/agents", headers=bearer)
    assert [a["name"] for a in listing.json()["agents"]] == ["helper"]
    assert (
        await client.get("/v1/agents/helper", headers={"x-api-key": issued.plaintext})
    ).status_code == 200

    forbidden = await client.get("/v1/agents/secret", headers=bearer)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == {
        "code": "forbidden",
        "message": "this API key may not use agent 'secret'",
    }
    # 403 before 404: a key cannot probe which agents exist
    assert (await client.get("/v1/agents/nothing", headers=bearer)).status_code == 403

    wrong_secret = issued.plaintext[:-4] + "AAAA"
    for key in (wrong_secret, "not-a-key", "am_ffffffffffff_" + "A" * 43):
        response = await client.get("/v1/agents", headers={"x-api-key": key})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "unknown or revoked API key"

    assert await keys.revoke(issued.record.key_id)
    assert (await client.get("/v1/agents", headers=bearer)).status_code == 401


async def test_keys_are_stored_hashed(make_app):
    keys = await keys_of(make_app())
    issued = await keys.issue("acme", ["*"], label="ops")
    [stored] = await keys.list()
    # The secret itself may contain "_" (URL-safe base64): take it as the verifier does.
    parsed = parse_key(issued.plaintext)
    assert parsed is not None
    secret = parsed[1]
    assert secret not in repr(stored) and stored.secret_hash != secret
    assert len(stored.salt) == 32 and len(stored.secret_hash) == 64
    assert (stored.tenant, stored.agents, stored.label) == ("acme", ("*",), "ops")


async def test_tenants_never_see_each_others_history(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    app = make_app()
    keys = await keys_of(app)
    acme = {"x-api-key": (await keys.issue("acme", ["*"])).plaintext}
    globex = {"x-api-key": (await keys.issue("globex", ["helper"])).plaintext}
    client = client_for(app)
    openai_server.push(Reply("Hello Ada."), Reply("I do not know you."), Reply("You are Ada."))

    await client.post(
        "/v1/agents/helper/run", json={"query": "I am Ada", "session_id": "s"}, headers=acme
    )
    await client.post(
        "/v1/agents/helper/run", json={"query": "Who am I?", "session_id": "s"}, headers=globex
    )
    await client.post(
        "/v1/agents/helper/run", json={"query": "Who am I?", "session_id": "s"}, headers=acme
    )

    # globex's run did not get acme's turn in its prompt; acme's second run did
    globex_prompt = [m["content"] for m in openai_server.requests[1]["messages"]]
    assert "I am Ada" not in globex_prompt
    acme_prompt = [m["content"] for m in openai_server.requests[2]["messages"]]
    assert acme_prompt[1:3] == ["I am Ada", "Hello Ada."]

    acme_history = (await client.get("/v1/memory/helper/history/s", headers=acme)).json()
    globex_history = (await client.get("/v1/memory/helper/history/s", headers=globex)).json()
    assert [m["content"] for m in acme_history["history"]] == [
        "I am Ada",
        "Hello Ada.",
        "Who am I?",
        "You are Ada.",
    ]
    assert [m["content"] for m in globex_history["history"]] == ["Who am I?", "I do not know you."]

    cleared = await client.delete("/v1/memory/helper/history/s", headers=globex)
    assert cleared.json()["removed"] == 2
    acme_after = (await client.get("/v1/memory/helper/history/s", headers=acme)).json()
    assert len(acme_after["history"]) == 4


async def test_runs_of_agents_outside_the_key_are_not_found(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, "helper", model=primary(openai_server.url))
    write_agent(agents_dir, "other")
    app = make_app()
    keys = await keys_of(app)
    admin = {"x-api-key": (await keys.issue("acme", ["*"])).plaintext}
    narrow = {"x-api-key": (await keys.issue("acme", ["other"])).plaintext}
    client = client_for(app)
    openai_server.push(Reply("hi"))
    run_id = (
        await client.post("/v1/agents/helper/run", json={"query": "q"}, headers=admin)
    ).json()["run_id"]
    assert (await client.get(f"/v1/runs/{run_id}", headers=admin)).status_code == 200
    assert (await client.get(f"/v1/runs/{run_id}", headers=narrow)).status_code == 404
    assert (await client.post(f"/v1/runs/{run_id}/cancel", headers=narrow)).status_code == 404
