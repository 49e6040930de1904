"""What the state-fault tests (Redis killed, PostgreSQL crashed) send and check: one helper
app ``helper`` answering runs and WhatsApp deliveries, and the 503 a store fault must be."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.messaging import signed, wa_text, whatsapp_delivery

__all__ = ["RUN", "WEBHOOK", "assert_unavailable", "deliver", "run", "stored"]

WEBHOOK = "/v1/channels/whatsapp/webhook"
RUN = "/v1/agents/helper/run"


def assert_unavailable(response: httpx.Response) -> None:
    """A store fault as the API answers it: 503, Retry-After, the stable code."""
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after", "").isdigit(), response.headers
    assert response.json()["error"]["code"] == "state_unavailable"


async def run(client: httpx.AsyncClient, query: str) -> httpx.Response:
    """A run of ``helper`` in a session of its own (named after the query)."""
    return await client.post(RUN, json={"query": query, "session_id": query})


async def deliver(client: httpx.AsyncClient, message_id: str, text: str) -> httpx.Response:
    """A signed WhatsApp delivery of one text, its sender named after the text."""
    body, headers = signed(whatsapp_delivery(wa_text(text, message_id=message_id, sender=text)))
    return await client.post(WEBHOOK, content=body, headers=headers)


async def stored(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run's record as ``GET /v1/runs/{id}`` serves it (which must succeed)."""
    response = await client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()
