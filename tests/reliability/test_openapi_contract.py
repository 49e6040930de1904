"""The server follows its own ``/openapi.json``: schemathesis over every route, on a real server.

The app runs on uvicorn on 127.0.0.1 (its own thread and event loop) with one file agent
answered by a scripted model server, both webhooks configured, and an admin key. Schemathesis
generates valid and invalid requests for every operation the document lists (its coverage
and fuzzing phases, positive and negative), sends them with the key, and runs its default
checks on every answer: no server error, every status, content type, header and body as
documented, invalid input refused (``"async": 0`` is not a boolean), valid input accepted,
and wrong methods answered 405 with an ``Allow`` naming the right ones.

Half of the valid cases that name an agent or a run are pointed at the real ones (``helper``,
a finished run), so success paths are crossed too, not only 404s. The number of examples is
bounded: about 2,000 requests, well under a minute.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from astromesh.auth import Role
from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.messaging import telegram_env, whatsapp_env
from tests.support.model_servers import Reply, ScriptedOpenAIServer

MAX_EXAMPLES = 80
"""Examples per operation in the fuzzing phase (the coverage phase adds its own)."""
DOCUMENT_ROUTES = {"/v1/agents", "/v1/agents/{name}", "/v1/workflows/register"}
"""Operations taking an agent or workflow document (see the exclusion in the test)."""
NOT_BUILT = {
    ("POST", "/v1/rag/pipelines"),
    ("PUT", "/v1/rag/pipelines/{name}"),
    ("DELETE", "/v1/rag/pipelines/{name}"),
}
"""Upstream's operations whose documented answer to an authorised, valid request is 501 with
a code naming why (pipelines are read-only through the API)."""


@dataclass
class Served:
    url: str
    key: str
    run_id: str
    """A finished run of ``helper``."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on a loopback port, its model answering every call, an admin key, a run."""
    agents = tmp_path_factory.mktemp("contract") / "agents"
    with ScriptedOpenAIServer() as model:
        model.push(*(Reply("A scripted answer.") for _ in range(20_000)))
        write_agent(agents, model=primary(model.url))
        env = {
            "ASTROMESH_REGISTRATION_MODEL_HOSTS": "127.0.0.1",
            # The webhooks are configured (unsigned deliveries: 401); replies go nowhere.
            **whatsapp_env("http://127.0.0.1:9"),
            **telegram_env("http://127.0.0.1:9"),
        }
        runtime = AgentRuntime(agents, env=env, state=MemoryBackend())
        app = create_app(runtime, ServerSettings(), owns_runtime=True)
        loop = asyncio.new_event_loop()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
        thread.start()
        while not server.started:
            if not thread.is_alive():
                pytest.fail("the server did not start", pytrace=False)
            threading.Event().wait(0.01)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

        async def issue() -> str:
            keys = await app.state.services.keys()
            issued = await keys.issue("default", ("*",), role=Role.ADMIN, label="contract")
            return issued.plaintext

        try:
            key = asyncio.run_coroutine_threadsafe(issue(), loop).result(timeout=30)
            ran = httpx.post(
                f"{url}/v1/agents/helper/run", json={"query": "hi"}, headers={"x-api-key": key}
            )
            assert ran.status_code == 200, ran.text
            yield Served(url, key, ran.json()["run_id"])
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            loop.close()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    # The document says strings hold no NUL (and no lone surrogate: the codec is UTF-8); where
    # schemathesis stops following a recursive schema it generates any value, so it is told.
    loaded.config.generation.update(allow_x00=False)
    # A body over the size limit (a 2 MB `query` breaking its maxLength) is refused before
    # it is read: 413, a refusal schemathesis does not count by default.
    checks = loaded.config.checks
    rejection = checks.negative_data_rejection
    checks.negative_data_rejection = type(rejection)(
        expected_statuses=[*rejection.expected_statuses, "413"]
    )
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


def point_at_real_resources(case: schemathesis.Case, served: Served) -> None:
    """Name ``helper`` and the finished run in half of the valid cases (chosen by a checksum
    of the case, so a failure reproduces), so success paths are crossed, not only 404s."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return  # a negative case must stay as generated: its invalid part may be the path
    if zlib.crc32(repr((case.body, case.query)).encode()) % 2:
        return
    params = case.path_parameters or {}
    for name in ("name", "agent"):
        if name in params:
            params[name] = "helper"
    if "run_id" in params:
        params["run_id"] = served.run_id


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_answer_is_the_documented_one(case: schemathesis.Case, served: Served) -> None:
    point_at_real_resources(case, served)
    excluded = []
    if case.operation.path in DOCUMENT_ROUTES:
        # A posted agent document is checked against the runtime (providers, tools,
        # templates, the registration policy), which no schema can say: 422 invalid_agent
        # names what is wrong with a well-formed one. Every other check still runs.
        excluded.append(positive_data_acceptance)
    if (case.operation.method.upper(), case.operation.path) in NOT_BUILT:
        # 501 is this operation's documented answer, not a server fault; the status, body
        # and headers are still checked against the document.
        excluded += [not_a_server_error, positive_data_acceptance]
    case.call_and_validate(headers={"x-api-key": served.key}, excluded_checks=excluded)


# -- the nits of the hostile pass, one by one ------------------------------------------------


@pytest.fixture
def helper_app(agents_dir, openai_server, make_app, client_for):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(*(Reply("An answer.") for _ in range(10)))
    app = make_app()
    return app, client_for(app)


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None, [], {}])
async def test_async_must_be_a_boolean(helper_app, value):
    _, client = helper_app
    response = await client.post("/v1/agents/helper/run", json={"query": "hi", "async": value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["field"] == "async"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/agents", "GET, POST"),
        ("PATCH", "/v1/agents", "GET, POST"),
        ("OPTIONS", "/v1/agents/helper", "GET, PUT, DELETE"),
        ("PUT", "/v1/health", "GET"),
        ("GET", "/v1/agents/helper/run", "POST"),
        ("DELETE", "/v1/memory/helper/semantic", "GET"),
        ("OPTIONS", "/v1/channels/whatsapp/webhook", "GET, POST"),
    ],
)
async def test_a_wrong_method_is_405_with_allow_naming_every_served_method(
    helper_app, method, path, allow
):
    _, client = helper_app
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_every_operation_documents_its_errors_with_the_error_body(helper_app):
    _, client = helper_app
    document = (await client.get("/openapi.json")).json()
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    public = {("get", "/v1/health"), ("get", "/v1/channels/{channel}/webhook")}
    public |= {("post", "/v1/channels/{channel}/webhook")}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            assert 422 in errors, (method, path)  # invalid text in the path or query
            if (method, path) not in public:
                assert {401, 403, 503} <= errors, (method, path)
            if "requestBody" in operation:
                assert 413 in errors, (method, path)
            for status in errors:
                schema = responses[str(status)]["content"]["application/json"]["schema"]
                assert schema == error_ref, (method, path, status)
            for status in {429, 503} & errors:
                assert "Retry-After" in responses[str(status)]["headers"]
    run = document["paths"]["/v1/agents/{name}/run"]["post"]["responses"]
    assert {"202", "404", "409", "429", "501"} <= set(run)
    text = document["components"]["schemas"]["RunRequest"]["properties"]["query"]["pattern"]
    assert text == "^[^\\u0000\\uD800-\\uDFFF]*$"
