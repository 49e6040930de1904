"""Fixtures for provider tests: scripted model servers on 127.0.0.1, fresh per test."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.model_servers import ScriptedOllamaServer, ScriptedOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    """A started OpenAI-compatible server with an empty queue; ``push`` replies onto it."""
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def ollama_server() -> Iterator[ScriptedOllamaServer]:
    """A started Ollama server with an empty queue; ``push`` replies onto it."""
    with ScriptedOllamaServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
