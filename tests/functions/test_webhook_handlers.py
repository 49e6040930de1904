"""functions/whatsapp and functions/telegram, invoked with every sample in events/<channel>/.

Each handler runs as a warm container would: the samples in order, then the asynchronous
self-invocations it made (recorded by moto) handed back to it, which run the agent and post
the replies to a platform server on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from astromesh.channels.aws import invoke
from astromesh.channels.messaging.inbox import MEDIA_NOTICE
from tests.support.agents import primary, write_agent
from tests.support.channel_lambdas import REGION, ChannelAWS
from tests.support.messaging import SAMPLE_EVENTS_ENV, PlatformServer
from tests.support.model_servers import Reply
from tests.support.stepfunctions import FakeLambdaContext, load_handler

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
FUNCTIONS = REPO / "functions"
HEAVY = ("numpy", "faiss", "onnxruntime", "tokenizers")

SAMPLE_ENV = SAMPLE_EVENTS_ENV

# sample -> (status, accepted messages or the error code)
WHATSAPP = {
    "verify": (200, None),
    "message": (200, 1),
    "status": (200, 0),
    "bad_signature": (403, "forbidden"),
    "duplicate": (200, 0),
    "media": (200, 1),
}
TELEGRAM = {
    "message": (200, 1),
    "duplicate": (200, 0),
    "bad_secret": (403, "forbidden"),
    "media": (200, 1),
    "edited": (200, 0),
}


def sample(channel: str, name: str) -> dict[str, Any]:
    return json.loads((EVENTS / channel / f"{name}.json").read_text())


@pytest.fixture
def platform() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture
def lambda_env(tmp_path, monkeypatch, openai_server, platform, redis_url, redis_prefix):
    write_agent(tmp_path / "agents", "assistant", model=primary(openai_server.url))
    env = {
        **SAMPLE_ENV,
        "WHATSAPP_API_URL": platform.url,
        "TELEGRAM_API_URL": platform.url,
        "ASTROMESH_AGENTS_DIR": str(tmp_path / "agents"),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "ASTROMESH_REDIS_URL": redis_url,
        "ASTROMESH_CHANNELS_REDIS_PREFIX": redis_prefix,
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with ChannelAWS() as aws:
        yield aws


@pytest.fixture
def load(lambda_env) -> Iterator[Any]:
    loaded: list[ModuleType] = []

    def make(channel: str) -> ModuleType:
        module = load_handler(FUNCTIONS / channel / "handler.py", f"test_{channel}_handler")
        loaded.append(module)
        return module

    yield make
    for module in loaded:
        module.worker.close()


def context(channel: str) -> FakeLambdaContext:
    return FakeLambdaContext(function_name=f"astromesh-{channel}")


def check_samples(module: ModuleType, channel: str, expected: dict) -> None:
    assert sorted(p.stem for p in (EVENTS / channel).glob("*.json")) == sorted(expected)
    for name, (status, detail) in expected.items():
        response = module.handler(sample(channel, name), context(channel))
        assert response["statusCode"] == status, (name, response)
        if name == "verify":
            assert response["body"] == "1158201444"
            assert response["headers"]["content-type"].startswith("text/plain")
        elif status == 200:
            assert json.loads(response["body"]) == {"status": "ok", "accepted": detail}, name
        else:
            assert json.loads(response["body"])["error"]["code"] == detail, name


def test_whatsapp_every_sample_then_the_replies(load, lambda_env, openai_server, platform):
    module = load("whatsapp")
    openai_server.push(Reply("An agent runtime runs declared agents."))

    check_samples(module, "whatsapp", WHATSAPP)
    jobs = lambda_env.take_jobs()
    assert [job["astromesh_job"]["work"]["message"]["kind"] for job in jobs] == ["text", "media"]
    assert platform.posts == []  # nothing is answered before the jobs run

    for job in jobs:
        module.handler(job, context("whatsapp"))

    assert platform.texts() == ["An agent runtime runs declared agents.", MEDIA_NOTICE]
    assert {post.body["to"] for post in platform.posts} == {"16315551181"}
    assert platform.posts[0].path == "/106540352242922/messages"
    assert platform.posts[0].headers["authorization"] == "Bearer sample-events-access-token"
    assert len(openai_server.requests) == 1


def test_telegram_every_sample_then_the_replies(load, lambda_env, openai_server, platform):
    module = load("telegram")
    openai_server.push(Reply("A runtime for agents."))

    check_samples(module, "telegram", TELEGRAM)
    for job in lambda_env.take_jobs():
        module.handler(job, context("telegram"))

    assert platform.texts() == ["A runtime for agents.", MEDIA_NOTICE]
    assert platform.posts[0].path == "/bot5550001:sample-events-bot-token/sendMessage"
    assert platform.posts[0].body["chat_id"] == "424242"


def test_a_failed_hand_off_answers_503_and_the_redelivery_runs(load, lambda_env, monkeypatch):
    module = load("whatsapp")
    client = invoke.lambda_client()
    with Stubber(client) as stubber:
        stubber.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
        refused = module.handler(sample("whatsapp", "message"), context("whatsapp"))
    assert refused["statusCode"] == 503
    assert json.loads(refused["body"])["error"]["code"] == "hand_off_failed"

    redelivered = module.handler(sample("whatsapp", "duplicate"), context("whatsapp"))
    assert json.loads(redelivered["body"])["accepted"] == 1
    assert len(lambda_env.take_jobs()) == 1


def test_without_its_settings_a_webhook_says_so(load, lambda_env, monkeypatch):
    for name in SAMPLE_ENV:
        if name.startswith("TELEGRAM_"):
            monkeypatch.delenv(name)
    module = load("telegram")
    response = module.handler(sample("telegram", "message"), context("telegram"))
    assert response["statusCode"] == 404
    assert "not configured" in json.loads(response["body"])["error"]["message"]


@pytest.mark.parametrize("function", ["whatsapp", "telegram", "ws_connect", "ws_message"])
def test_a_channel_handler_imports_nothing_heavy(function):
    """Cold starts: no numpy, FAISS, onnxruntime or tokenizers in the channel functions."""
    handler = FUNCTIONS / function / "handler.py"
    code = "\n".join(
        [
            "import importlib.util, sys",
            f"spec = importlib.util.spec_from_file_location('h', {str(handler)!r})",
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


def signed_event(payload: dict[str, Any]) -> dict[str, Any]:
    """The sample message event carrying ``payload`` instead, signed with the sample secret."""
    from astromesh.channels.messaging.whatsapp import sign

    event = sample("whatsapp", "message")
    body = json.dumps(payload)
    signature = sign(body.encode(), SAMPLE_ENV["WHATSAPP_APP_SECRET"])
    event["body"] = body
    event["headers"]["X-Hub-Signature-256"] = signature
    event["multiValueHeaders"]["X-Hub-Signature-256"] = [signature]
    return event


def two_messages() -> dict[str, Any]:
    payload = json.loads(sample("whatsapp", "message")["body"])
    value = payload["entry"][0]["changes"][0]["value"]
    first = value["messages"][0]
    value["messages"] = [{**first, "id": "wamid.TWO.1"}, {**first, "id": "wamid.TWO.2"}]
    return payload


@pytest.mark.parametrize("failing", [0, 1], ids=["first-fails", "second-fails"])
def test_a_failed_hand_off_releases_every_message_not_handed_off(load, lambda_env, failing):
    module = load("whatsapp")
    event = signed_event(two_messages())
    client = invoke.lambda_client()
    with Stubber(client) as stubber:
        if failing == 1:
            stubber.add_response("invoke", {"StatusCode": 202})
        stubber.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
        refused = module.handler(event, context("whatsapp"))
    assert refused["statusCode"] == 503

    redelivered = module.handler(event, context("whatsapp"))

    # The one handed off before the failure is still claimed (its job answers it); every
    # message from the failing one on is accepted again.
    assert json.loads(redelivered["body"])["accepted"] == 2 - failing
    assert len(lambda_env.take_jobs()) == 2 - failing


@pytest.mark.parametrize(
    "payload",
    [{"entry": "abc"}, {"entry": [{"changes": "x"}]}, {"entry": [{"changes": [{"value": 1}]}]}],
)
def test_a_signed_delivery_of_the_wrong_shape_is_acknowledged_by_the_function(
    load, lambda_env, payload
):
    module = load("whatsapp")
    response = module.handler(signed_event(payload), context("whatsapp"))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok", "accepted": 0}
    assert lambda_env.take_jobs() == []
