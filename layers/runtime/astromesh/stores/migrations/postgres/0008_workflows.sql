-- Workflow runs (astromesh.workflows): one JSONB document each, with the columns the
-- restart scan and the approvals listing filter on; version is the compare-and-swap counter.
CREATE TABLE workflow_runs (
    id          text        PRIMARY KEY,
    tenant      text        NOT NULL,
    workflow    text        NOT NULL,
    status      text        NOT NULL,
    version     integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    document    jsonb       NOT NULL
);
CREATE INDEX workflow_runs_status ON workflow_runs (status, tenant);
-- Workflows registered over the API, per tenant (the agents folder's are files).
CREATE TABLE workflows (
    tenant      text        NOT NULL,
    name        text        NOT NULL,
    document    text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, name)
);
