"""``current_time``: the current date and time in a time zone (IANA names, UTC by default).

Also built under upstream's names ``datetime_now`` and ``get_current_time``; the answer
carries upstream's keys (``datetime``, ``unix_timestamp``) beside ours, so a prompt written
for either reads it.

``config.timezone`` sets the default zone; the model may ask for another by name. Models
have no clock and a stale idea of "today", so this is the tool that grounds date questions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig

Clock = Callable[[], datetime]
"""Returns an aware UTC datetime; injectable so tests can fix "now"."""


class CurrentTimeConfig(BuiltinConfig):
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone(value)
        except ToolError as exc:
            raise ValueError(exc.message) from None
        return value


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``.

    Raises:
        ToolError: no such zone (the message gives the form expected).
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Madrid' or 'UTC'"
        ) from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CurrentTimeTool(Tool):
    """Tells the time."""

    def __init__(
        self,
        name: str = "current_time",
        description: str = "",
        *,
        config: CurrentTimeConfig | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.config = config or CurrentTimeConfig()
        self.clock = clock
        super().__init__(
            name=name,
            description=description
            or "The current date and time (ISO 8601) in a time zone; UTC unless one is given.",
            parameters={
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "description": "IANA time zone, e.g. 'America/New_York'",
                    }
                },
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        tz_name = arguments.get("timezone") or self.config.timezone
        now = self.clock().astimezone(zone(tz_name))
        return {
            "timezone": tz_name,
            "datetime": now.isoformat(),
            "iso": now.isoformat(timespec="seconds"),
            "date": now.date().isoformat(),
            "time": now.strftime("%H:%M:%S"),
            "weekday": now.strftime("%A"),
            "utc_offset": now.strftime("%z"),
            "unix": int(now.timestamp()),
            "unix_timestamp": now.timestamp(),
        }
