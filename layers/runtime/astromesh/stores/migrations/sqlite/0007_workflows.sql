-- Workflow runs (astromesh.workflows): one JSON document each, with the columns the
-- restart scan and the approvals listing filter on; version is the compare-and-swap counter.
CREATE TABLE workflow_runs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX workflow_runs_status ON workflow_runs (status, tenant);
-- Workflows registered over the API, per tenant (the agents folder's are files).
CREATE TABLE workflows (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
