"""Channel settings: upstream's ``channels.yaml`` (``${VAR}`` interpolated), or env vars.

The file is ``$ASTROMESH_CHANNELS_FILE``, else ``channels.yaml`` in the agents folder (the
agent loader skips that name), in upstream's shape::

    channels:
      whatsapp:
        verify_token: "${WHATSAPP_VERIFY_TOKEN}"
        access_token: "${WHATSAPP_ACCESS_TOKEN}"
        phone_number_id: "${WHATSAPP_PHONE_NUMBER_ID}"
        app_secret: "${WHATSAPP_APP_SECRET}"
        default_agent: whatsapp-assistant
        tenant: default                  # ours: whose sessions and runs these are
        rate_limit: {window_seconds: 60, max_messages: 30}
      telegram:
        bot_token: "${TELEGRAM_BOT_TOKEN}"
        webhook_secret: "${TELEGRAM_WEBHOOK_SECRET}"
        default_agent: assistant

A channel absent from the file is read from its environment variables (``WHATSAPP_*``,
``TELEGRAM_*``, as docs/api.md names them) when any of them is set. ``WHATSAPP_API_URL`` /
``TELEGRAM_API_URL`` (the platform's base URL; tests point it at a local server) apply
whenever the file does not name ``api_url``. Secrets are required: a webhook whose
signature cannot be checked is refused, never served open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astromesh.config.interpolate import InterpolationError, interpolate
from astromesh.errors import ConfigurationError

CHANNELS_FILE_ENV = "ASTROMESH_CHANNELS_FILE"
CHANNELS_FILE_NAME = "channels.yaml"
WHATSAPP_API_URL = "https://graph.facebook.com/v21.0"
TELEGRAM_API_URL = "https://api.telegram.org"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class RateLimit(_Settings):
    """At most ``max_messages`` per sender in any ``window_seconds``."""

    window_seconds: float = Field(60, gt=0)
    max_messages: int = Field(30, ge=1)


class ChannelSettings(_Settings):
    """What every channel's settings have."""

    default_agent: str | None = None
    """The agent answering; ``None``: the only agent there is."""
    tenant: str = "default"
    rate_limit: RateLimit | None = Field(default_factory=RateLimit)
    """``null`` turns the limit off."""
    api_url: str | None = None


class WhatsAppSettings(ChannelSettings):
    verify_token: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    phone_number_id: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)


class TelegramSettings(ChannelSettings):
    bot_token: str = Field(min_length=1)
    webhook_secret: str = Field(min_length=1)


class ChannelsConfig(_Settings):
    whatsapp: WhatsAppSettings | None = None
    telegram: TelegramSettings | None = None


_ENV_FIELDS: dict[str, dict[str, str]] = {
    "whatsapp": {
        "verify_token": "WHATSAPP_VERIFY_TOKEN",
        "access_token": "WHATSAPP_ACCESS_TOKEN",
        "phone_number_id": "WHATSAPP_PHONE_NUMBER_ID",
        "app_secret": "WHATSAPP_APP_SECRET",
        "default_agent": "WHATSAPP_DEFAULT_AGENT",
        "tenant": "WHATSAPP_TENANT",
    },
    "telegram": {
        "bot_token": "TELEGRAM_BOT_TOKEN",
        "webhook_secret": "TELEGRAM_WEBHOOK_SECRET",
        "default_agent": "TELEGRAM_DEFAULT_AGENT",
        "tenant": "TELEGRAM_TENANT",
    },
}
_API_URL_ENV = {"whatsapp": "WHATSAPP_API_URL", "telegram": "TELEGRAM_API_URL"}
_API_URL_DEFAULT = {"whatsapp": WHATSAPP_API_URL, "telegram": TELEGRAM_API_URL}

ENV_VARIABLES: dict[str, tuple[str, ...]] = {
    channel: (*fields.values(), _API_URL_ENV[channel]) for channel, fields in _ENV_FIELDS.items()
}
"""Every variable a channel's settings are read from (an empty one counts as unset)."""


def load_channels(
    env: Mapping[str, str] | None = None, agents_dir: Path | None = None
) -> ChannelsConfig:
    """The channels configured by the file and the environment.

    Raises:
        ConfigurationError: the file cannot be read or does not validate, or a channel's
            variables are only partly set (naming what is missing).
    """
    env = os.environ if env is None else env
    raw = _read_file(env, agents_dir)
    sections: dict[str, Any] = {}
    for channel, fields in _ENV_FIELDS.items():
        if channel in raw:
            sections[channel] = raw[channel]
        elif any(env.get(var) for var in fields.values()):
            sections[channel] = {key: env[var] for key, var in fields.items() if env.get(var)}
        else:
            continue
        if isinstance(sections[channel], dict) and not sections[channel].get("api_url"):
            url = env.get(_API_URL_ENV[channel]) or _API_URL_DEFAULT[channel]
            sections[channel] = {**sections[channel], "api_url": url}
    unknown = set(raw) - set(_ENV_FIELDS)
    if unknown:
        sections.update({name: raw[name] for name in unknown})  # refused below, by name
    try:
        return ChannelsConfig.model_validate(sections)
    except ValidationError as exc:
        raise ConfigurationError(f"channel settings are not valid: {_explain(exc)}") from None


def _read_file(env: Mapping[str, str], agents_dir: Path | None) -> dict[str, Any]:
    named = env.get(CHANNELS_FILE_ENV)
    path = Path(named) if named else (agents_dir / CHANNELS_FILE_NAME if agents_dir else None)
    if path is None or not path.is_file():
        if named:
            raise ConfigurationError(f"{CHANNELS_FILE_ENV} names {named}, which is not a file")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read the channels file: {exc}") from None
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict):
        raise ConfigurationError(f"{path}: expected a 'channels:' mapping at the top")
    try:
        resolved = _interpolated(channels, env)
    except InterpolationError as exc:
        raise ConfigurationError(f"{path}: {exc.message}") from None
    assert isinstance(resolved, dict)
    return resolved


def _interpolated(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {key: _interpolated(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolated(item, env) for item in value]
    return value


def _explain(exc: ValidationError) -> str:
    """Field paths and the variables that would fill them, without echoing any value."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"])
        channel, _, field = path.partition(".")
        var = _ENV_FIELDS.get(channel, {}).get(field)
        hint = f" (or set {var})" if var else ""
        message = "missing" if error["type"] == "missing" else error["msg"]
        problems.append(f"channels.{path}: {message}{hint}")
    return "; ".join(problems)
