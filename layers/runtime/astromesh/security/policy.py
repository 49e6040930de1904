"""The registration policy: what an agent document posted over the API may use.

An agent file in the agents folder is the operator's, deployed with the code. A document posted
to ``/v1/agents`` comes from whoever holds a key, so it is untrusted code: it gets only what
this policy grants, allowlist first. The policy comes from the ``RuntimeConfig`` document
(``spec.registration``), each field overridable by an environment variable (Lambda has no
agents-folder edits at deploy time, but it has environment):

=========================================  ======================================
``ASTROMESH_REGISTRATION_TOOL_TYPES``      ``tool_types`` (comma-separated)
``ASTROMESH_REGISTRATION_BUILTINS``        ``builtins``
``ASTROMESH_REGISTERED_TOOL_MODULES``      ``python_modules``
``ASTROMESH_REGISTRATION_MCP_URLS``        ``mcp_urls``
``ASTROMESH_REGISTRATION_FILE_ROOTS``      ``file_roots``
``ASTROMESH_REGISTRATION_PRIVATE_NETWORK`` ``allow_private_network`` (true/false)
``ASTROMESH_REGISTRATION_NETWORK_HOSTS``   ``network_hosts``
``ASTROMESH_REGISTRATION_MODEL_HOSTS``     ``model_hosts``
``ASTROMESH_REGISTRATION_SECRET_ENVS``     ``secret_envs``
``ASTROMESH_REGISTRATION_SQL_DSNS``        ``sql_dsns``
``ASTROMESH_REGISTRATION_MAX_ITERATIONS``  ``max_iterations`` (and ``_MAX_TIMEOUT_SECONDS``,
                                           ``_MAX_OUTPUT_TOKENS``, ``_MAX_REPLANS``)
=========================================  ======================================

Whatever the policy says, file roots never lie in :data:`ALWAYS_FORBIDDEN_ROOTS` or the
server's state folder, stdio MCP servers are never started for a registered agent, and cloud
metadata addresses are never reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from astromesh.config.runtime_config import RegistrationSettings
from astromesh.errors import ConfigurationError
from astromesh.security.grants import ALWAYS_FORBIDDEN_ROOTS, Grants

if TYPE_CHECKING:
    from astromesh.runtime import AgentRuntime

ENV_PREFIX = "ASTROMESH_REGISTRATION_"
TOOL_MODULES_ENV = "ASTROMESH_REGISTERED_TOOL_MODULES"

_LIST_ENVS: dict[str, str] = {
    "tool_types": f"{ENV_PREFIX}TOOL_TYPES",
    "builtins": f"{ENV_PREFIX}BUILTINS",
    "python_modules": TOOL_MODULES_ENV,
    "mcp_urls": f"{ENV_PREFIX}MCP_URLS",
    "file_roots": f"{ENV_PREFIX}FILE_ROOTS",
    "network_hosts": f"{ENV_PREFIX}NETWORK_HOSTS",
    "model_hosts": f"{ENV_PREFIX}MODEL_HOSTS",
    "secret_envs": f"{ENV_PREFIX}SECRET_ENVS",
    "sql_dsns": f"{ENV_PREFIX}SQL_DSNS",
}
PRIVATE_NETWORK_ENV = f"{ENV_PREFIX}PRIVATE_NETWORK"
_NUMBER_ENVS: dict[str, str] = {
    name: f"{ENV_PREFIX}{name.upper()}"
    for name in ("max_iterations", "max_timeout_seconds", "max_output_tokens", "max_replans")
}


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """The resolved policy: every list as a tuple, every root as an absolute path.

    Build it with :meth:`for_runtime` (or :meth:`from_settings` in tests).
    """

    tool_types: frozenset[str]
    builtins: frozenset[str]
    python_modules: tuple[str, ...]
    base: Path = field(default_factory=Path.cwd)
    """The agents folder: relative roots in documents are taken from it, as the builder does."""
    mcp_urls: tuple[str, ...] = ()
    file_roots: tuple[Path, ...] = ()
    allow_private_network: bool = False
    network_hosts: tuple[str, ...] | None = None
    model_hosts: tuple[str, ...] = ()
    secret_envs: frozenset[str] = frozenset()
    sql_dsns: frozenset[str] = frozenset()
    max_iterations: int = 25
    max_timeout_seconds: float = 900
    max_output_tokens: int = 8192
    max_replans: int = 5
    forbidden_roots: tuple[Path, ...] = field(default=ALWAYS_FORBIDDEN_ROOTS)

    @classmethod
    def from_settings(
        cls,
        settings: RegistrationSettings,
        *,
        base: Path,
        default_modules: Sequence[str] = (),
        state_dirs: Sequence[Path] = (),
    ) -> RegistrationPolicy:
        """Resolve ``settings``: relative file roots against ``base`` (the agents folder)."""
        return cls(
            base=base.resolve(),
            tool_types=frozenset(settings.tool_types),
            builtins=frozenset(settings.builtins),
            python_modules=tuple(
                settings.python_modules if settings.python_modules is not None else default_modules
            ),
            mcp_urls=tuple(settings.mcp_urls),
            file_roots=tuple(_absolute(root, base) for root in settings.file_roots),
            allow_private_network=settings.allow_private_network,
            network_hosts=(
                tuple(settings.network_hosts) if settings.network_hosts is not None else None
            ),
            model_hosts=tuple(settings.model_hosts),
            secret_envs=frozenset(settings.secret_envs),
            sql_dsns=frozenset(settings.sql_dsns),
            max_iterations=settings.max_iterations,
            max_timeout_seconds=settings.max_timeout_seconds,
            max_output_tokens=settings.max_output_tokens,
            max_replans=settings.max_replans,
            forbidden_roots=(
                *ALWAYS_FORBIDDEN_ROOTS,
                *(_absolute(str(d), base) for d in state_dirs),
            ),
        )

    @classmethod
    def for_runtime(
        cls, runtime: AgentRuntime, *, python_modules: Sequence[str] | None = None
    ) -> RegistrationPolicy:
        """The policy of ``runtime``: its RuntimeConfig's ``spec.registration`` with the
        environment's overrides; ``python_modules`` (the server settings') wins over both.

        Raises:
            ConfigurationError: an override names something unknown (the variable is named).
        """
        doc = runtime.config.runtime
        settings = doc.spec.registration if doc is not None else RegistrationSettings()
        settings = with_env_overrides(settings, runtime.env)
        if python_modules is not None:
            settings = settings.model_copy(update={"python_modules": list(python_modules)})
        folder = runtime.agents_dir if runtime.agents_dir.is_dir() else runtime.agents_dir.parent
        return cls.from_settings(
            settings,
            base=folder,
            default_modules=sorted(python_names(folder)),
            state_dirs=runtime.state_dirs(),
        )

    def grants(self) -> Grants:
        """What a registered agent may reach at run time, before its own ``permissions``."""
        return Grants(
            registered=True,
            private_network=self.allow_private_network,
            network_hosts=self.network_hosts,
            model_hosts=self.model_hosts,
            mcp_urls=self.mcp_urls,
            file_roots=self.file_roots,
            write_roots=self.file_roots,
            forbidden_roots=self.forbidden_roots,
            protected_roots=(self.base,),
            tool_types=self.tool_types,
            secret_envs=self.secret_envs,
            sql_dsns=self.sql_dsns,
        )


def with_env_overrides(
    settings: RegistrationSettings, env: Mapping[str, str]
) -> RegistrationSettings:
    """``settings`` with every ``ASTROMESH_REGISTRATION_*`` variable that is set applied.

    Raises:
        ConfigurationError: a value the settings model refuses, naming the variable.
    """
    update: dict[str, object] = {}
    for name, variable in _LIST_ENVS.items():
        raw = env.get(variable)
        if raw is not None:
            update[name] = [item.strip() for item in raw.split(",") if item.strip()]
    for name, variable in _NUMBER_ENVS.items():
        raw = env.get(variable)
        if raw is not None and raw.strip():
            update[name] = raw.strip()
    raw_private = env.get(PRIVATE_NETWORK_ENV)
    if raw_private is not None:
        flag = raw_private.strip().lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigurationError(f"{PRIVATE_NETWORK_ENV} must be true or false, got {flag!r}")
        update["allow_private_network"] = flag in ("true", "1", "yes")
    if not update:
        return settings
    try:
        return RegistrationSettings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = str(error["loc"][0]) if error["loc"] else ""
        variable = {**_LIST_ENVS, **_NUMBER_ENVS}.get(field_name, PRIVATE_NETWORK_ENV)
        raise ConfigurationError(f"{variable}: {error['msg']}") from None


def python_names(folder: Path) -> set[str]:
    """The importable packages and modules directly in ``folder`` (the agents folder)."""
    names: set[str] = set()
    if not folder.is_dir():
        return names
    for entry in folder.iterdir():
        if entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
    return names


def module_allowed(module: str, allowed: Sequence[str]) -> bool:
    """Whether ``module`` is one of ``allowed`` or a submodule of one."""
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def _absolute(root: str, base: Path) -> Path:
    """``root`` made absolute against ``base``, with ``..`` and symlinks resolved (so a
    listed root cannot be a link into a forbidden folder)."""
    path = Path(root).expanduser()
    return (path if path.is_absolute() else base / path).resolve()
