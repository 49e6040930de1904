"""API keys and who they make the caller: the shared flow, written once for every store.

A key belongs to one tenant, may use a set of agents within it, and has a :class:`Role`
(what it may do with them: run, manage its tenant's agents, or administer every tenant).

A key reads ``am_<key_id>_<secret>``. ``key_id`` is public (it is what ``astromesh keys
list`` shows and ``revoke`` takes) and finds the stored record in one indexed lookup; only
``sha256(salt || secret)`` of the 256-bit random secret is stored, with a random salt per key.

Why a salted SHA-256 rather than a slow KDF or an HMAC with a server secret: the secret is
32 random bytes, so a leaked hash cannot be brute-forced whatever the hash speed (slow KDFs
protect low-entropy passwords, and would cost every request milliseconds); the per-key salt
keeps equal secrets from hashing alike across stores; and an HMAC would need one more secret
distributed to every Lambda instance and to the CLI, whose loss or rotation would invalidate
every key at once. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from astromesh.errors import ValidationFailed
from astromesh.runs.state import utcnow

ALL_AGENTS = "*"
"""In a key's agent set: every agent, including ones registered later."""

KEY_PREFIX = "am"
_KEY_RE = re.compile(r"^am_([a-z0-9]{1,32})_([A-Za-z0-9_-]{16,128})$")
TENANT_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"
"""How a tenant is spelt: lowercase letters, digits, ``-`` and ``_``, at most 64."""
_TENANT_RE = re.compile(TENANT_PATTERN)
_AGENT_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")


class Role(StrEnum):
    """What a key may do, each role including the ones below it.

    ``user`` runs and reads its tenant's agents; ``developer`` also registers, changes,
    pauses and deletes them; ``admin`` acts on every tenant and on the file agents, whose
    status every tenant shares. Keys stored before roles existed are ``developer``: that is
    what they could do then, minus reaching into other tenants, which was the bug.
    """

    USER = "user"
    DEVELOPER = "developer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def includes(self, other: Role) -> bool:
        """Whether this role may do what ``other`` may."""
        return self.rank >= other.rank


_RANKS = {Role.USER: 0, Role.DEVELOPER: 1, Role.ADMIN: 2}

DEFAULT_ROLE = Role.DEVELOPER
"""The role of a key created without one, and of keys stored before roles existed."""


def parse_role(value: str) -> Role:
    """The role called ``value``.

    Raises:
        ValidationFailed: not one of the roles.
    """
    try:
        return Role(value.strip().lower())
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise ValidationFailed(f"role {value!r} is not valid: use one of {names}") from None


def valid_tenant(tenant: str) -> bool:
    """Whether ``tenant`` is spelt as tenants must be (keys, ``?tenant=``)."""
    return bool(_TENANT_RE.match(tenant))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key. ``salt`` and ``secret_hash`` never leave the store and the check below."""

    key_id: str
    tenant: str
    agents: tuple[str, ...]
    salt: str
    secret_hash: str
    label: str = ""
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None
    role: Role = DEFAULT_ROLE

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: its record and the one and only copy of the plaintext."""

    record: ApiKey
    plaintext: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant whose agents and sessions they see, the agents they may use
    there, and their role. ``role`` defaults to the least one, so a principal built without
    thinking about roles (a messaging channel, an old connection record) can only run."""

    tenant: str
    agents: frozenset[str]
    key_id: str | None = None
    role: Role = Role.USER

    @classmethod
    def open(cls) -> Principal:
        """The caller of a server running without keys (development mode): the local operator,
        so ``admin`` of tenant ``default``."""
        return cls("default", frozenset({ALL_AGENTS}), role=Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def allows(self, agent: str) -> bool:
        return ALL_AGENTS in self.agents or agent in self.agents


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}\x00{secret}".encode()).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, ``None`` for anything else."""
    match = _KEY_RE.match(text.strip())
    return (match[1], match[2]) if match else None


class KeyStore(ABC):
    """API keys in a durable store. Backends fill in the five storage methods."""

    async def issue(
        self,
        tenant: str,
        agents: Iterable[str],
        *,
        label: str = "",
        key_id: str | None = None,
        secret: str | None = None,
        role: Role | str = DEFAULT_ROLE,
    ) -> IssuedKey:
        """Create a key for ``tenant`` allowed to use ``agents`` (``*`` for all) as ``role``.

        ``key_id`` and ``secret`` are generated unless given (sample events and tests pin
        them so a fixed key in a file works).

        Raises:
            ValidationFailed: a malformed tenant, agent name, key id, secret or role.
            ConflictError: ``key_id`` is taken.
        """
        allowed = _agent_set(agents)
        role = parse_role(role) if isinstance(role, str) else role
        if not _TENANT_RE.match(tenant):
            raise ValidationFailed(
                f"tenant {tenant!r} is not valid: use lowercase letters, digits, '-' and '_'"
            )
        key_id = key_id or secrets.token_hex(6)
        secret = secret or secrets.token_urlsafe(32)
        plaintext = f"{KEY_PREFIX}_{key_id}_{secret}"
        if parse_key(plaintext) != (key_id, secret):
            raise ValidationFailed("key id must be [a-z0-9]{1,32}; secret [A-Za-z0-9_-]{16,128}")
        salt = secrets.token_hex(16)
        record = ApiKey(
            key_id=key_id,
            tenant=tenant,
            agents=allowed,
            salt=salt,
            secret_hash=hash_secret(salt, secret),
            label=label,
            role=role,
        )
        await self._insert(record)
        return IssuedKey(record, plaintext)

    async def verify(self, plaintext: str) -> ApiKey | None:
        """The active key ``plaintext`` is, or ``None`` (malformed, unknown, wrong, revoked)."""
        parsed = parse_key(plaintext)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = await self._get(key_id)
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(hash_secret(record.salt, secret), record.secret_hash):
            return None
        return record

    @abstractmethod
    async def _insert(self, record: ApiKey) -> None:
        """Store a new key; ``ConflictError`` when its id exists."""

    @abstractmethod
    async def _get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""

    @abstractmethod
    async def list(self) -> list[ApiKey]:
        """Every key, oldest first."""

    @abstractmethod
    async def revoke(self, key_id: str) -> bool:
        """Revoke an active key; whether one was revoked."""

    @abstractmethod
    async def has_active(self) -> bool:
        """Whether any key is active (a server with none may run open in development)."""


def _agent_set(agents: Iterable[str]) -> tuple[str, ...]:
    names = sorted({name.strip() for name in agents if name.strip()})
    if not names:
        raise ValidationFailed("a key needs at least one agent name, or '*' for all agents")
    for name in names:
        if name != ALL_AGENTS and not _AGENT_RE.match(name):
            raise ValidationFailed(f"{name!r} is not an agent name (or '*')")
    return (ALL_AGENTS,) if ALL_AGENTS in names else tuple(names)
