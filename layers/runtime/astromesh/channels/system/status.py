"""``GET /v1/system/status``: what upstream's ``astromeshctl status`` prints.

Upstream's daemon reports its node: version, uptime, mode, pid, the agents loaded and its
mesh services and peers. Here a process is a local server or a Lambda instance, with no mesh:
``services`` and ``peers`` are empty and ``mesh`` is null, so upstream's client prints them
as "none" rather than failing.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from astromesh import __version__

if TYPE_CHECKING:
    from astromesh.channels.services import Services

STARTED_AT = time.time()
"""When this process imported the API (a Lambda instance's cold start, or the local server's
start): the origin of ``uptime_seconds``."""


def system_status(services: Services) -> dict[str, Any]:
    """The status of this process; touches no store, so it answers even when one is down."""
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - STARTED_AT, 2),
        # background_runs is off exactly in the Lambda api function (ServerSettings.from_env).
        "mode": "dev" if services.settings.background_runs else "lambda",
        "agents_loaded": len(services.runtime.agent_names()),
        "pid": os.getpid(),
        "services": {},
        "peers": [],
        "mesh": None,
    }
