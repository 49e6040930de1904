"""``send_webhook``: POST a JSON payload to a URL the model names (upstream's builtin).

Arguments as upstream's: ``url``, ``payload``, ``headers``. Unlike a ``type: webhook`` tool,
whose URL is fixed in the document, the URL here comes from the call, so the SSRF guard is
the whole defence: every connection resolved, checked and pinned, redirects not followed (a
webhook answers, it does not send us elsewhere), the host allowlists applied. A POST is
never retried: it may have reached the receiver. The answer is upstream's
``{status_code, response}`` with the response text bounded.
"""

from __future__ import annotations

from typing import Any

from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig, request_headers
from astromesh.tools.ssrf import SSRFGuard


class SendWebhookConfig(NetworkConfig):
    pass


class SendWebhookTool(Tool):
    """POSTs JSON through the SSRF guard."""

    def __init__(
        self,
        name: str = "send_webhook",
        description: str = "",
        *,
        config: SendWebhookConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or SendWebhookConfig()
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-send-webhook", follow_redirects=False
        )
        super().__init__(
            name=name,
            description=description or "Send an HTTP POST to a webhook URL with a JSON payload.",
            parameters={
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "Webhook URL (http or https)"},
                    "payload": {"description": "JSON payload"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                },
                "required": ["url", "payload"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        response = await self.http.fetch(
            "POST",
            arguments["url"],
            json=arguments["payload"],
            headers=request_headers(arguments.get("headers")),
        )
        result: dict[str, Any] = {
            "status_code": response.status_code,
            "response": response.text,
            "delivered": 200 <= response.status_code < 300,
        }
        if response.truncated:
            result["truncated"] = response.note()
        return result
