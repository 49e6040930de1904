"""The local server's channel hub, kept on ``app.state``: built by the first webhook request,
closed with the app (its lifespan calls :func:`close_hub`).

Apart from the webhook routes (``routes.py``) so that the app can close a hub without
importing the routes, which it includes only when a webhook arrives
(:mod:`astromesh.channels.lazy_routers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from astromesh.channels.security import services_of

if TYPE_CHECKING:
    from astromesh.channels.messaging.inbox import ChannelHub

_HUB = "channel_hub"


def hub_of(request: Request) -> ChannelHub:
    """The app's hub, built on first use (synchronously, so two first requests cannot
    both build one)."""
    state = request.app.state
    hub: ChannelHub | None = getattr(state, _HUB, None)
    if hub is None:
        from astromesh.channels.messaging.inbox import ChannelHub  # httpx: on the first webhook

        hub = ChannelHub.build(services_of(request))
        setattr(state, _HUB, hub)
    return hub


async def close_hub(app: FastAPI) -> None:
    """Finish (briefly) the answers in flight and close the hub, if one was built."""
    hub: ChannelHub | None = getattr(app.state, _HUB, None)
    if hub is not None:
        setattr(app.state, _HUB, None)
        await hub.aclose()
