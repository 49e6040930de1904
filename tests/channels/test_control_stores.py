"""The agent registry and the key store behave alike on every backend (migrations 0003, 0005)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from astromesh.auth import KeyStore, key_store_for
from astromesh.errors import ConfigurationError, ConflictError, NotFoundError, ValidationFailed
from astromesh.registry import FILE_AGENTS, AgentRegistry, AgentStatus, registry_for
from astromesh.stores.base import StateBackend
from astromesh.stores.factory import open_backend


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request, tmp_path) -> AsyncIterator[StateBackend]:
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_schema")
        state = open_backend("postgres", postgres_dsn=dsn)
    else:
        state = open_backend(request.param, sqlite_path=tmp_path / "state.db")
    await state.open()
    yield state
    await state.close()


@pytest.fixture
def registry(backend) -> AgentRegistry:
    return registry_for(backend)


@pytest.fixture
def keys(backend) -> KeyStore:
    return key_store_for(backend)


async def test_registry_round_trip_with_revisions(registry):
    assert await registry.get("a", tenant="acme") is None
    assert await registry.list(tenant=None) == []
    created = await registry.create("a", "text v1", tenant="acme")
    assert (created.name, created.source, created.revision, created.tenant) == (
        "a",
        "text v1",
        1,
        "acme",
    )
    with pytest.raises(ConflictError, match="already registered"):
        await registry.create("a", "again", tenant="acme")

    updated = await registry.update("a", "text v2", tenant="acme", revision=1)
    assert (updated.source, updated.revision) == ("text v2", 2)
    assert updated.updated_at >= created.updated_at
    with pytest.raises(ConflictError, match="stored revision 2, writer had 1"):
        await registry.update("a", "stale", tenant="acme", revision=1)
    with pytest.raises(NotFoundError):
        await registry.update("b", "x", tenant="acme", revision=1)

    await registry.create("0-first", "t", tenant="acme")
    assert [r.name for r in await registry.list(tenant="acme")] == ["0-first", "a"]
    assert (await registry.get("a", tenant="acme")).source == "text v2"
    assert await registry.delete("a", tenant="acme") is True
    assert await registry.delete("a", tenant="acme") is False
    assert await registry.get("a", tenant="acme") is None


async def test_names_are_unique_per_tenant_only(registry):
    """Two tenants may each register a name; neither reaches the other's through the API."""
    acme = await registry.create("support", "acme's", tenant="acme")
    globex = await registry.create("support", "globex's", tenant="globex")
    assert (acme.tenant, globex.tenant) == ("acme", "globex")
    assert (await registry.get("support", tenant="acme")).source == "acme's"
    assert (await registry.get("support", tenant="globex")).source == "globex's"
    assert await registry.get("support", tenant="initech") is None
    assert [(r.tenant, r.name) for r in await registry.list(tenant=None)] == [
        ("acme", "support"),
        ("globex", "support"),
    ]
    assert [r.source for r in await registry.list(tenant="globex")] == ["globex's"]

    with pytest.raises(NotFoundError):  # globex's revision 1 does not open acme's agent
        await registry.update("support", "x", tenant="initech", revision=1)
    await registry.update("support", "globex v2", tenant="globex", revision=1)
    assert (await registry.get("support", tenant="acme")).source == "acme's"

    await registry.set_status("support", AgentStatus.PAUSED, tenant="globex")
    assert await registry.status("support", tenant="acme") is AgentStatus.DEPLOYED
    assert await registry.delete("support", tenant="initech") is False
    assert await registry.delete("support", tenant="globex") is True
    assert await registry.get("support", tenant="acme") is not None
    assert await registry.status("support", tenant="globex") is AgentStatus.DEPLOYED


async def test_statuses_default_to_deployed(registry):
    assert await registry.status("x", tenant=FILE_AGENTS) is AgentStatus.DEPLOYED
    await registry.set_status("x", AgentStatus.PAUSED, tenant=FILE_AGENTS)
    await registry.set_status("y", AgentStatus.PAUSED, tenant="acme")
    await registry.set_status("y", AgentStatus.DEPLOYED, tenant="acme")
    assert await registry.status("x", tenant=FILE_AGENTS) is AgentStatus.PAUSED
    assert await registry.status("x", tenant="acme") is AgentStatus.DEPLOYED
    assert await registry.statuses() == {
        (FILE_AGENTS, "x"): AgentStatus.PAUSED,
        ("acme", "y"): AgentStatus.DEPLOYED,
    }


async def test_keys_issue_verify_revoke(keys):
    assert await keys.has_active() is False
    issued = await keys.issue("acme", ["b", "a", "a"], label="ci")
    assert issued.plaintext.startswith(f"am_{issued.record.key_id}_")
    record = await keys.verify(issued.plaintext)
    assert record is not None
    assert (record.tenant, record.agents, record.label) == ("acme", ("a", "b"), "ci")
    assert await keys.has_active() is True
    assert await keys.verify(issued.plaintext + "x") is None
    assert await keys.verify("garbage") is None

    pinned = await keys.issue("acme", ["*", "a"], key_id="fixed", secret="s" * 20)
    assert pinned.plaintext == "am_fixed_" + "s" * 20
    assert pinned.record.agents == ("*",)
    with pytest.raises(ConflictError):
        await keys.issue("acme", ["*"], key_id="fixed", secret="t" * 20)

    assert [k.key_id for k in await keys.list()] == [issued.record.key_id, "fixed"]
    assert await keys.revoke("fixed") is True
    assert await keys.revoke("fixed") is False
    assert await keys.verify(pinned.plaintext) is None
    assert (await keys.list())[1].revoked_at is not None
    assert await keys.has_active() is True
    await keys.revoke(issued.record.key_id)
    assert await keys.has_active() is False


async def test_key_inputs_are_checked(keys):
    with pytest.raises(ValidationFailed, match="tenant"):
        await keys.issue("Acme Corp", ["*"])
    with pytest.raises(ValidationFailed, match="at least one agent"):
        await keys.issue("acme", [" ", ""])
    with pytest.raises(ValidationFailed, match="not an agent name"):
        await keys.issue("acme", ["Bad Name"])


async def test_redis_cannot_hold_the_control_plane(redis_url, redis_prefix):
    state = open_backend("redis", redis_url=redis_url, redis_prefix=redis_prefix)
    with pytest.raises(ConfigurationError, match="durable SQL store"):
        registry_for(state)
    await state.close()


async def test_lookup_answers_record_and_status_together(registry):
    assert await registry.lookup("a", tenant="acme") == (None, AgentStatus.DEPLOYED)
    # Without a registered agent of the tenant, the status is the file agent's.
    await registry.set_status("a", AgentStatus.PAUSED, tenant=FILE_AGENTS)
    assert await registry.lookup("a", tenant="acme") == (None, AgentStatus.PAUSED)
    created = await registry.create("a", "text", tenant="acme")
    record, status = await registry.lookup("a", tenant="acme")
    assert (record.name, record.tenant, record.revision, status) == (
        "a",
        "acme",
        created.revision,
        AgentStatus.DEPLOYED,  # acme's own agent: its own status, not the file agent's
    )
    await registry.set_status("a", AgentStatus.PAUSED, tenant="acme")
    await registry.set_status("a", AgentStatus.DEPLOYED, tenant=FILE_AGENTS)
    record, status = await registry.lookup("a", tenant="acme")
    assert (record.source, status) == ("text", AgentStatus.PAUSED)
    assert await registry.lookup("a", tenant="globex") == (None, AgentStatus.DEPLOYED)
