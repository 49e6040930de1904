"""API keys: issued once, stored hashed, each bound to a tenant and a set of agents."""

from astromesh.auth.base import ALL_AGENTS, ApiKey, IssuedKey, KeyStore, Principal
from astromesh.auth.factory import key_store_for

__all__ = ["ALL_AGENTS", "ApiKey", "IssuedKey", "KeyStore", "Principal", "key_store_for"]
