-- The usage ledger (astromesh.telemetry.usage): one row per usage.by_model line of every
-- finished run, written in the transaction of the run's terminal save (the run's earlier
-- rows replaced), read by GET /v1/usage and GET /v1/metrics per tenant and time window.
CREATE TABLE usage_lines (
    run_id        text             NOT NULL,
    line          integer          NOT NULL,
    tenant        text             NOT NULL,
    agent         text             NOT NULL,
    namespace     text             NOT NULL,
    status        text             NOT NULL,
    started_at    timestamptz      NOT NULL,
    parent_run_id text,
    provider      text             NOT NULL,
    model         text             NOT NULL,
    role          text             NOT NULL,
    calls         integer          NOT NULL,
    tokens_in     bigint           NOT NULL,
    tokens_out    bigint           NOT NULL,
    cost          double precision NOT NULL,
    PRIMARY KEY (run_id, line)
);
CREATE INDEX usage_lines_tenant_started ON usage_lines (tenant, started_at);
