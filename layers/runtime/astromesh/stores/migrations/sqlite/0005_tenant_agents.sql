-- Registered agents belong to a tenant, and keys have a role.
--   agents        keyed by (tenant, name): two tenants may each register a `support`. Rows
--                 keep the tenant they were registered under (the column existed already).
--   agent_status  keyed by (tenant, name). A registered agent's status is its tenant's; a
--                 file agent's status is shared by every tenant and stored under tenant ''
--                 (no real tenant can be called that). Existing rows of a registered agent
--                 move to its tenant, the others (file agents) to ''.
--   api_keys      `role` (admin, developer or user); keys made before roles existed could
--                 register and manage agents, so they become `developer`.
-- SQLite cannot change a primary key in place: the two tables are rebuilt and renamed.

CREATE TABLE agents_by_tenant (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant, name)
);

INSERT INTO agents_by_tenant (tenant, name, source, revision, created_at, updated_at)
    SELECT tenant, name, source, revision, created_at, updated_at FROM agents;

CREATE TABLE agent_status_by_tenant (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (tenant, name)
);

INSERT INTO agent_status_by_tenant (tenant, name, status, updated_at)
    SELECT COALESCE((SELECT a.tenant FROM agents AS a WHERE a.name = s.name), ''),
           s.name, s.status, s.updated_at
    FROM agent_status AS s;

DROP TABLE agents;
DROP TABLE agent_status;
ALTER TABLE agents_by_tenant RENAME TO agents;
ALTER TABLE agent_status_by_tenant RENAME TO agent_status;

ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'developer'
    CHECK (role IN ('admin', 'developer', 'user'));
