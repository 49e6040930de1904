"""Grants: what one built agent's tools and models may reach, enforced where they connect.

The registration check (:mod:`astromesh.security.registration`) refuses a document that asks
for more than the policy allows, with line numbers. Grants are the second line: the builders
hand them to the tools and providers, so a connection or a file read outside them fails even
when a check was missed, a host name re-resolves elsewhere (DNS rebinding), or a redirect
points inside. Every agent has grants: a file agent's are open except for what its own
``spec.permissions`` narrows; a registered agent's start from the policy and are narrowed by
its ``permissions`` the same way (a document can only narrow, never widen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError

if TYPE_CHECKING:
    from astromesh.config.agent import Permissions
    from astromesh.tools.ssrf import SSRFGuard

ALWAYS_FORBIDDEN_ROOTS: tuple[Path, ...] = tuple(
    Path(p) for p in ("/proc", "/sys", "/dev", "/etc", "/run", "/boot")
)
"""Folders no file tool of a registered agent may read, whatever the policy lists: the
process's environment and memory (``/proc/self/environ``), devices, system configuration and
runtime secrets (``/run/secrets``)."""

KERNEL_ROOTS: tuple[Path, ...] = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))
"""Never readable by any agent, file agents included: nothing an agent should read is there,
and ``/proc/self/environ`` holds every secret of the server."""


@dataclass(frozen=True, slots=True)
class Grants:
    """The ceilings applied while an agent is built and run.

    Attributes:
        registered: the document came through the API (untrusted).
        private_network: whether tools may reach private addresses at all (a tool's own
            ``allow_private_network`` must say so too).
        network_hosts: when set, the only hosts tools may reach.
        model_hosts: when set, the only hosts a model candidate that no ProviderConfig
            defines may reach (``None``: the operator's file, unguarded).
        mcp_urls: when set, the URL prefixes an MCP tool over HTTP may name.
        file_roots: when set, ``read_file`` roots must lie inside one of these.
        write_roots: when set, ``write_file`` roots must lie inside one of these (a
            registered agent's are the policy's ``file_roots``; ``filesystem.write`` narrows).
        forbidden_roots: folders no file tool may read, whatever else says so.
        protected_roots: folders no file tool may *write* into, on top of the forbidden
            ones: the agents folder, for registered agents (a module written there would
            become an allowlisted ``python`` handler, a YAML file an operator's agent).
        sql_dsns: when set, the only connection strings ``sql_query`` may use.
        tool_types: when set, the tool types that may be built.
        secret_envs: when set, the only environment variables tools may read secrets from
            (a webhook's ``secret_env``).
        dry_run: side-effecting tools describe the call instead of making it
            (``permissions.execution.dry_run``).
    """

    registered: bool = False
    private_network: bool = True
    network_hosts: tuple[str, ...] | None = None
    model_hosts: tuple[str, ...] | None = None
    mcp_urls: tuple[str, ...] | None = None
    file_roots: tuple[Path, ...] | None = None
    write_roots: tuple[Path, ...] | None = None
    forbidden_roots: tuple[Path, ...] = KERNEL_ROOTS
    protected_roots: tuple[Path, ...] = ()
    sql_dsns: frozenset[str] | None = None
    tool_types: frozenset[str] | None = None
    secret_envs: frozenset[str] | None = None
    dry_run: bool = False

    def narrowed(self, permissions: Permissions | None, *, base: Path) -> Grants:
        """These grants narrowed by an agent's ``spec.permissions`` (relative filesystem
        paths taken from ``base``, the agents folder). Entries outside the grants are
        dropped here; the registration check reports them as errors first."""
        if permissions is None:
            return self
        grants = self
        if permissions.network is not None and permissions.network.allowed:
            hosts = tuple(host for host in permissions.network.allowed if self.covers_host(host))
            grants = dataclasses.replace(grants, network_hosts=hosts)
        if permissions.filesystem is not None and permissions.filesystem.read:
            roots = tuple(
                root
                for root in (_absolute(p, base) for p in permissions.filesystem.read)
                if self.root_refusal(root) is None
            )
            grants = dataclasses.replace(grants, file_roots=roots)
        if permissions.filesystem is not None and permissions.filesystem.write:
            roots = tuple(
                root
                for root in (_absolute(p, base) for p in permissions.filesystem.write)
                if self.write_root_refusal(root) is None
            )
            grants = dataclasses.replace(grants, write_roots=roots)
        if permissions.execution is not None:
            execution = permissions.execution
            if execution.tool_types is not None:
                allowed = frozenset(execution.tool_types)
                if self.tool_types is not None:
                    allowed &= self.tool_types
                grants = dataclasses.replace(grants, tool_types=allowed)
            if execution.dry_run:
                grants = dataclasses.replace(grants, dry_run=True)
        return grants

    # -- network -----------------------------------------------------------------------------

    def tool_guard(self, *, allow_private_network: bool) -> SSRFGuard:
        """The guard of a webhook, ``http_get`` or MCP tool whose config says
        ``allow_private_network``: private addresses only when both allow them."""
        from astromesh.tools.ssrf import SSRFGuard

        return SSRFGuard(
            allow_private_network=allow_private_network and self.private_network,
            allowed_hosts=self.network_hosts,
        )

    def model_guard(self) -> SSRFGuard | None:
        """The guard of a model candidate no ProviderConfig defines; ``None``: unguarded.

        The hosts are the operator's allowlist, so private addresses among them are fine
        (a vLLM in the VPC); only those hosts, and never a metadata address, are reachable.
        """
        if self.model_hosts is None:
            return None
        from astromesh.tools.ssrf import SSRFGuard

        return SSRFGuard(allow_private_network=True, allowed_hosts=self.model_hosts)

    def covers_host(self, pattern: str) -> bool:
        """Whether a ``permissions.network.allowed`` entry stays inside these grants."""
        if self.network_hosts is None:
            return True
        from astromesh.tools.ssrf import host_matches

        wanted = pattern.strip().lower()
        if wanted in (h.strip().lower() for h in self.network_hosts):
            return True
        if wanted.startswith("*."):
            return False  # a wildcard is covered only by the same wildcard
        host, port = (
            (wanted.rpartition(":")[0], int(wanted.rpartition(":")[2]))
            if _has_port(wanted)
            else (wanted, None)
        )
        return any(
            host_matches(allowed, host, port)
            if port is not None
            else not _has_port(allowed.strip()) and host_matches(allowed, host, 0)
            for allowed in self.network_hosts
        )

    def check_mcp(self, cfg: Any) -> None:
        """Refuse an MCP server these grants do not include (before anything starts).

        A registered agent never starts a stdio server; over HTTP its URL must continue one
        of :attr:`mcp_urls`. File agents may do both, as their operator wrote.
        """
        if cfg.transport == "stdio":
            if self.registered:
                raise ConfigurationError(
                    f"tool {cfg.name!r}: MCP over stdio would run a command on the server;"
                    " agents registered through the API may not"
                )
            return
        if self.mcp_urls is not None and not any(
            url_under_prefix(cfg.url or "", prefix) for prefix in self.mcp_urls
        ):
            raise ConfigurationError(
                f"tool {cfg.name!r}: MCP server {cfg.url} is not in the allowed MCP URLs"
            )

    def mcp_guard(self) -> SSRFGuard | None:
        """The guard of an MCP connection over HTTP: for registered agents only the hosts of
        :attr:`mcp_urls` (the operator's list, so private addresses among them are fine);
        for file agents their ``permissions.network`` if any; otherwise unguarded."""
        from astromesh.tools.ssrf import SSRFGuard

        if self.mcp_urls is not None:
            hosts = tuple(_host_port(url) for url in self.mcp_urls)
            return SSRFGuard(allow_private_network=True, allowed_hosts=hosts)
        if self.network_hosts is not None:
            return SSRFGuard(allow_private_network=True, allowed_hosts=self.network_hosts)
        return None

    # -- files -------------------------------------------------------------------------------

    def root_refusal(self, root: Path) -> str | None:
        """Why ``root`` (absolute, resolved) may not be read by a file tool, or ``None``."""
        for forbidden in self.forbidden_roots:
            if root == forbidden or root.is_relative_to(forbidden):
                return f"{root} is inside {forbidden}, which no agent may read"
            if self.registered and forbidden.is_relative_to(root):
                return f"{root} contains {forbidden}, which no registered agent may read"
        if self.file_roots is not None and not any(
            root == allowed or root.is_relative_to(allowed) for allowed in self.file_roots
        ):
            listed = ", ".join(str(r) for r in self.file_roots) or "none"
            return f"{root} is outside the folders this agent may read ({listed})"
        return None

    def write_root_refusal(self, root: Path) -> str | None:
        """Why ``root`` (absolute, resolved) may not be written under, or ``None``: the
        forbidden folders, the protected ones (either way: inside one, or containing one),
        and outside :attr:`write_roots` when those are set."""
        for forbidden in (*self.forbidden_roots, *self.protected_roots):
            if root == forbidden or root.is_relative_to(forbidden):
                return f"{root} is inside {forbidden}, which this agent may not write into"
            if self.registered and forbidden.is_relative_to(root):
                return f"{root} contains {forbidden}, which this agent may not write into"
        if self.write_roots is not None and not any(
            root == allowed or root.is_relative_to(allowed) for allowed in self.write_roots
        ):
            listed = ", ".join(str(r) for r in self.write_roots) or "none"
            return f"{root} is outside the folders this agent may write into ({listed})"
        return None

    def check_root(self, root: Path, *, tool: str) -> Path:
        """``root`` resolved, or a :class:`ConfigurationError` naming why it is refused."""
        resolved = root.resolve()
        problem = self.root_refusal(resolved)
        if problem is not None:
            raise ConfigurationError(f"builtin tool {tool!r}: root refused: {problem}")
        return resolved

    def tool_env(self, env: Mapping[str, str]) -> Mapping[str, str]:
        """The part of the server's environment the agent's tools may read secrets from."""
        if self.secret_envs is None:
            return env
        return {name: env[name] for name in self.secret_envs if name in env}

    def check_sql_dsn(self, dsn: str, *, tool: str) -> None:
        """Refuse a ``sql_query`` connection string outside :attr:`sql_dsns`."""
        if self.sql_dsns is not None and dsn not in self.sql_dsns:
            raise ConfigurationError(
                f"builtin tool {tool!r}: this database is not one the agent may query"
                " (the operator lists them in spec.registration.sql_dsns)"
            )

    # -- tool types --------------------------------------------------------------------------

    def check_tool_type(self, kind: str, *, tool: str) -> None:
        """Refuse building a tool of a type these grants do not include."""
        if self.tool_types is not None and kind not in self.tool_types:
            allowed = ", ".join(sorted(self.tool_types)) or "none"
            raise ConfigurationError(
                f"tool {tool!r}: tools of type {kind!r} are not allowed for this agent"
                f" (allowed: {allowed})"
            )


FILE_AGENT_GRANTS = Grants()
"""Grants of an operator's agent file before its ``permissions`` narrow them."""


def url_under_prefix(url: str, prefix: str) -> bool:
    """``url`` equals ``prefix`` or continues it at a path boundary (``https://a/mcp`` does
    not admit ``https://a/mcp-admin``), with the same scheme, host and port."""
    import httpx

    try:
        target, allowed = httpx.URL(url), httpx.URL(prefix)
    except httpx.InvalidURL:
        return False
    if (target.scheme, target.host, target.port) != (allowed.scheme, allowed.host, allowed.port):
        return False
    want = allowed.path.rstrip("/")
    return not want or target.path == want or target.path.startswith(want + "/")


def _host_port(url: str) -> str:
    import httpx

    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"[{parsed.host}]:{port}" if ":" in parsed.host else f"{parsed.host}:{port}"


def _has_port(pattern: str) -> bool:
    return pattern.count(":") == 1 and pattern.rpartition(":")[2].isdigit()


def _absolute(path: str, base: Path) -> Path:
    candidate = Path(path).expanduser()
    return (candidate if candidate.is_absolute() else base / candidate).resolve()
