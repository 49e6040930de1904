"""Upstream's per-request provider override (bring your own key), refused with the reason.

Upstream's run route reads ``X-Astromesh-Provider-Name`` and ``X-Astromesh-Provider-Key`` and
builds a provider of that name with that key for the run, bypassing the agent's configured
candidates. Here an agent's models are the operator's: candidates with an endpoint, a model,
a timeout, the registration policy's host allowlist and SSRF guard, prices and budgets. A
provider chosen per request would skip every one of those (the name picks an endpoint the
operator never listed), and handing a caller's key to the configured endpoint instead would
send a secret to a server its owner never chose. Ignoring the headers (what this API did
before) is worse than both: the caller believes its key paid for a run the operator's key
paid for. So a request carrying either header is refused, naming it and why.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from astromesh.channels.errors import ProviderOverrideRefused

PROVIDER_OVERRIDE_HEADERS = ("X-Astromesh-Provider-Name", "X-Astromesh-Provider-Key")


def refuse_provider_override(connection: HTTPConnection) -> None:
    """Refuse a run request that names a provider or key of its own.

    Raises:
        ProviderOverrideRefused: naming the header(s) sent (never their values: one is a
            secret).
    """
    sent = [name for name in PROVIDER_OVERRIDE_HEADERS if name in connection.headers]
    if sent:
        raise ProviderOverrideRefused(
            f"{' and '.join(sent)}: a per-request model provider or key is not accepted here;"
            " an agent runs on the models its document and the operator's ProviderConfig"
            " name (endpoints, host allowlist, prices and budgets apply to those only), so a"
            " caller's key is never used nor sent anywhere. Send the request without"
            f" {' / '.join(PROVIDER_OVERRIDE_HEADERS)}"
        )
