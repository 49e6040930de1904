"""functions/api/handler.py through Mangum, invoked with every sample in events/api/."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from astromesh.auth import key_store_for
from astromesh.stores.sqlite import SQLiteBackend
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply
from tests.support.stepfunctions import FakeLambdaContext, load_handler

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events" / "api"
HANDLER = REPO / "functions" / "api" / "handler.py"
SAMPLE_KEY_ID = "sampleevents"
SAMPLE_SECRET = "c2FtcGxlLWV2ZW50cy1ub3QtYS1zZWNyZXQ"

# sample -> (status, error code or None)
EXPECTED = {
    "health": (200, None),
    "run": (200, None),
    "run_async": (501, "async_runs_unavailable"),
    "bad_json": (400, "bad_json"),
    "unknown_agent": (404, "not_found"),
    "missing_key": (401, "unauthorized"),
}


async def _seed_sample_key(path: Path) -> None:
    """The key the sample events carry, created as ``astromesh keys create`` would."""
    backend = SQLiteBackend(path)
    try:
        await key_store_for(backend).issue(
            "events", ["*"], label="sample events", key_id=SAMPLE_KEY_ID, secret=SAMPLE_SECRET
        )
    finally:
        await backend.close()


@pytest.fixture
def api(tmp_path, monkeypatch, openai_server):
    agents = tmp_path / "agents"
    write_agent(agents, "assistant", model=primary(openai_server.url))
    state = tmp_path / "state.db"
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(agents))
    monkeypatch.setenv("ASTROMESH_STATE_BACKEND", "sqlite")
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(state))
    monkeypatch.delenv("ASTROMESH_AUTH", raising=False)
    asyncio.run(_seed_sample_key(state))
    module = load_handler(HANDLER, "astromesh_api_handler_under_test")
    yield module
    services = module.app.state.services
    asyncio.run(services.aclose())
    asyncio.run(services.runtime.close())


def test_every_sample_event_on_one_warm_container(api, openai_server, capsys):
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(EXPECTED)
    openai_server.push(Reply("An agent runtime runs agents."))

    for name, (status, code) in EXPECTED.items():
        event = json.loads((EVENTS / f"{name}.json").read_text())
        response = api.handler(event, FakeLambdaContext(function_name="astromesh-api"))
        assert response["statusCode"] == status, (name, response["body"])
        body = json.loads(response["body"])
        assert "Traceback" not in response["body"]
        if code is None:
            continue
        assert body["error"]["code"] == code, name
        assert body["detail"] == body["error"]["message"], name  # upstream clients read detail

    run = json.loads(
        api.handler(
            json.loads((EVENTS / "health.json").read_text()),
            FakeLambdaContext(function_name="astromesh-api"),
        )["body"]
    )
    assert run["status"] == "ok" and run["auth"] == "required"
    printed = capsys.readouterr().out
    assert '"Requests"' in printed and '"ClientErrors"' in printed  # EMF metrics flushed
    assert len(openai_server.requests) == 1


def test_the_run_sample_answers_like_the_rest_route(api, openai_server):
    openai_server.push(Reply("One sentence."))
    event = json.loads((EVENTS / "run.json").read_text())
    response = api.handler(event, FakeLambdaContext(function_name="astromesh-api"))
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert (body["answer"], body["status"], body["session_id"]) == (
        "One sentence.",
        "succeeded",
        "sample-session",
    )
    assert {"steps", "usage", "trace", "data", "run_id"} <= set(body)


def _invoke(api, payload: dict) -> dict:
    """``aws lambda invoke --payload`` on the api function: a direct invocation."""
    return api.handler(payload, FakeLambdaContext(function_name="astromesh-api"))


def _with_key(event_name: str, key: str | None) -> dict:
    """A sample API Gateway event with ``key`` as its bearer token (or none)."""
    event = json.loads((EVENTS / f"{event_name}.json").read_text())
    for headers in (event["headers"], event["multiValueHeaders"]):
        for name in [h for h in headers if h.lower() in ("authorization", "x-api-key")]:
            del headers[name]
    if key is not None:
        event["headers"]["Authorization"] = f"Bearer {key}"
        event["multiValueHeaders"]["Authorization"] = [f"Bearer {key}"]
    return event


def test_an_operator_gets_the_first_key_of_a_deployed_stage_by_invoking_the_function(
    api, openai_server
):
    """The only way to a key where the database is out of reach: create, use, list, revoke."""
    created = _invoke(
        api,
        {"astromesh_admin": {"action": "create_key", "tenant": "acme", "agents": ["*"],
                             "role": "admin", "label": "first"}},
    )  # fmt: skip
    assert created["ok"] is True, created
    assert (created["tenant"], created["agents"], created["role"], created["label"]) == (
        "acme",
        ["*"],
        "admin",
        "first",
    )
    key = created["key"]
    assert key.startswith(f"am_{created['key_id']}_")

    openai_server.push(Reply("Hello from acme."))
    ctx = FakeLambdaContext(function_name="astromesh-api")
    answered = api.handler(_with_key("run", key), ctx)
    assert answered["statusCode"] == 200, answered["body"]
    assert json.loads(answered["body"])["answer"] == "Hello from acme."

    listed = _invoke(api, {"astromesh_admin": {"action": "list_keys"}})
    assert listed["ok"] is True and key.split("_", 2)[2] not in json.dumps(listed)
    assert {k["key_id"] for k in listed["keys"]} >= {created["key_id"], SAMPLE_KEY_ID}

    revoked = _invoke(
        api, {"astromesh_admin": {"action": "revoke_key", "key_id": created["key_id"]}}
    )
    assert revoked == {"ok": True, "revoked": created["key_id"]}
    refused = api.handler(_with_key("run", key), ctx)
    assert refused["statusCode"] == 401
    assert _invoke(
        api, {"astromesh_admin": {"action": "revoke_key", "key_id": created["key_id"]}}
    ) == {"ok": False, "error": f"no active key {created['key_id']!r}"}


def test_admin_requests_are_checked_and_never_reachable_through_api_gateway(api):
    bad_role = _invoke(
        api, {"astromesh_admin": {"action": "create_key", "tenant": "acme", "role": "root"}}
    )
    assert bad_role["ok"] is False and "root" in bad_role["error"]
    no_tenant = _invoke(api, {"astromesh_admin": {"action": "create_key"}})
    assert no_tenant == {"ok": False, "error": "'tenant' is required"}
    unknown = _invoke(api, {"astromesh_admin": {"action": "drop_tables"}})
    assert unknown["ok"] is False and "create_key, list_keys or revoke_key" in unknown["error"]
    # an API Gateway event is an HTTP request whatever else it carries: no key, 401
    event = _with_key("run", None)
    event["astromesh_admin"] = {"action": "create_key", "tenant": "evil", "role": "admin"}
    response = api.handler(event, FakeLambdaContext(function_name="astromesh-api"))
    assert response["statusCode"] == 401
    listed = _invoke(api, {"astromesh_admin": {"action": "list_keys"}})
    assert [k["tenant"] for k in listed["keys"]] == ["events"]
