-- Registered agents belong to a tenant, and keys have a role.
--   agents        keyed by (tenant, name): two tenants may each register a `support`. Rows
--                 keep the tenant they were registered under (the column existed already).
--   agent_status  keyed by (tenant, name). A registered agent's status is its tenant's; a
--                 file agent's status is shared by every tenant and stored under tenant ''
--                 (no real tenant can be called that). Existing rows of a registered agent
--                 move to its tenant, the others (file agents) to ''.
--   api_keys      `role` (admin, developer or user); keys made before roles existed could
--                 register and manage agents, so they become `developer`.

ALTER TABLE agents DROP CONSTRAINT agents_pkey;
ALTER TABLE agents ADD PRIMARY KEY (tenant, name);

ALTER TABLE agent_status ADD COLUMN tenant text NOT NULL DEFAULT '';
UPDATE agent_status AS s SET tenant = a.tenant FROM agents AS a WHERE a.name = s.name;
ALTER TABLE agent_status ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE agent_status DROP CONSTRAINT agent_status_pkey;
ALTER TABLE agent_status ADD PRIMARY KEY (tenant, name);

ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'developer'
    CHECK (role IN ('admin', 'developer', 'user'));
