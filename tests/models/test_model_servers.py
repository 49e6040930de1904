"""The scripted servers themselves: other suites (ReAct loop, CLI) depend on their behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.model_servers import (
    Reply,
    ScriptedOllamaServer,
    ScriptedOpenAIServer,
    load_script,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_urls_and_health_endpoints() -> None:
    with ScriptedOpenAIServer() as openai, ScriptedOllamaServer() as ollama:
        assert openai.url.startswith("http://127.0.0.1:") and openai.url.endswith("/v1")
        assert not ollama.url.endswith("/")
        assert httpx.get(openai.url + "/models").json()["data"][0]["id"] == "scripted"
        assert httpx.get(ollama.url + "/api/tags").status_code == 200
        assert httpx.get(ollama.url + "/").text == "Ollama is running"
        assert httpx.get(openai.url + "/nope").status_code == 404


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        _ = ScriptedOpenAIServer().url


def test_openai_sse_framing_and_recording() -> None:
    with ScriptedOpenAIServer([Reply("abcdefgh")], chunk_size=4) as server:
        body = {
            "model": "m",
            "messages": [],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with httpx.stream("POST", server.url + "/chat/completions", json=body) as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["transfer-encoding"] == "chunked"
            text = response.read().decode()

        assert server.requests == [body]
        assert server.pending == 0
    events = [block.removeprefix("data: ") for block in text.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert contents == ["", "abcd", "efgh", None]
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def test_ollama_ndjson_framing_and_non_streamed_requests() -> None:
    with ScriptedOllamaServer([Reply("abcdef"), Reply("whole")], chunk_size=3) as server:
        streamed = httpx.post(server.url + "/api/chat", json={"model": "m", "messages": []})
        single = httpx.post(
            server.url + "/api/chat", json={"model": "m", "messages": [], "stream": False}
        )

    lines = [json.loads(raw) for raw in streamed.text.splitlines()]
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert [item["message"]["content"] for item in lines] == ["abc", "def", ""]
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 7
    assert single.json()["message"]["content"] == "whole"
    assert single.json()["done"] is True


def test_push_and_empty_queue() -> None:
    with ScriptedOllamaServer() as server:
        empty = httpx.post(server.url + "/api/chat", json={"stream": False})
        server.push(Reply("later"))
        later = httpx.post(server.url + "/api/chat", json={"stream": False})

    assert empty.status_code == 500
    assert "no scripted reply left" in empty.json()["error"]
    assert later.json()["message"]["content"] == "later"


def test_error_reply_shapes() -> None:
    with ScriptedOpenAIServer([Reply("slow down", status=429)]) as openai:
        response = httpx.post(openai.url + "/chat/completions", json={})
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"

    with ScriptedOllamaServer([Reply(status=500)]) as ollama:
        response = httpx.post(ollama.url + "/api/chat", json={})
    assert response.json() == {"error": "scripted error 500"}


def test_invalid_json_request_is_rejected_without_consuming_a_reply() -> None:
    with ScriptedOpenAIServer([Reply("kept")]) as server:
        response = httpx.post(server.url + "/chat/completions", content=b"{oops")
        assert response.status_code == 400
        assert server.pending == 1


def test_reply_from_dict_accepts_both_tool_call_forms() -> None:
    reply = Reply.from_dict(
        {
            "content": "x",
            "tool_calls": [["add", {"a": 1}], {"name": "mul", "arguments": {"b": 2}}],
            "status": 200,
        }
    )
    assert reply.tool_calls == [("add", {"a": 1}), ("mul", {"b": 2})]
    with pytest.raises(ValueError, match="unknown Reply fields"):
        Reply.from_dict({"contents": "typo"})


def test_load_script(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([{"content": "hi"}, {"status": 503}]))
    assert load_script(script) == [Reply("hi"), Reply(status=503)]


@pytest.mark.parametrize(
    ("protocol", "chat_path"), [("openai", "/chat/completions"), ("ollama", "/api/chat")]
)
def test_command_line_entry_point(tmp_path: Path, protocol: str, chat_path: str) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([{"content": "from the script"}]))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.model_servers", protocol, "--script", str(script)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(
            url + chat_path, json={"model": "m", "messages": [], "stream": False}, timeout=10
        )
        body = response.json()
        message = body["choices"][0]["message"] if protocol == "openai" else body["message"]
        assert message["content"] == "from the script"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
