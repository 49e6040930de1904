"""The ``RuntimeConfig`` document: settings of the runtime itself (at most one per load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.issues import config_error
from astromesh.config.orchestration import OrchestrationDefaults


class ApiSettings(ConfigModel):
    """Where the local server listens."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


class RuntimeDefaults(ConfigModel):
    """Values for agents that leave them out."""

    orchestration: OrchestrationDefaults = Field(default_factory=OrchestrationDefaults)


class StateSettings(ConfigModel):
    """Where run state lives; the backend's own setting must be given."""

    backend: Literal["sqlite", "redis", "postgres", "memory"] = "sqlite"
    sqlite_path: str = ".astromesh/state.db"
    redis_url: str | None = None
    postgres_dsn: str | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> StateSettings:
        needed = {"redis": "redis_url", "postgres": "postgres_dsn"}.get(self.backend)
        if needed is not None and not getattr(self, needed):
            raise config_error(f"backend '{self.backend}' needs '{needed}'", field=needed)
        return self


class RuntimeConfigSpec(ConfigModel):
    """``spec`` of a RuntimeConfig."""

    api: ApiSettings = Field(default_factory=ApiSettings)
    defaults: RuntimeDefaults = Field(default_factory=RuntimeDefaults)
    state: StateSettings = Field(default_factory=StateSettings)


class RuntimeConfigDocument(ConfigDocument):
    """``kind: RuntimeConfig``."""

    kind: Literal["RuntimeConfig"]
    spec: RuntimeConfigSpec
