"""API keys: issued once, stored hashed, each bound to a tenant, a set of agents and a role."""

from astromesh.auth.base import (
    ALL_AGENTS,
    DEFAULT_ROLE,
    ApiKey,
    IssuedKey,
    KeyStore,
    Principal,
    Role,
    parse_role,
)
from astromesh.auth.factory import key_store_for

__all__ = [
    "ALL_AGENTS",
    "DEFAULT_ROLE",
    "ApiKey",
    "IssuedKey",
    "KeyStore",
    "Principal",
    "Role",
    "key_store_for",
    "parse_role",
]
