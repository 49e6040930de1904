-- The usage ledger (astromesh.telemetry.usage): one row per usage.by_model line of every
-- finished run, written with the run's terminal save (the run's earlier rows replaced), read
-- by GET /v1/usage and GET /v1/metrics per tenant and time window.
-- started_at is the run's created_at as fixed-width UTC text (string order = time order).

CREATE TABLE usage_lines (
    run_id        TEXT    NOT NULL,
    line          INTEGER NOT NULL,
    tenant        TEXT    NOT NULL,
    agent         TEXT    NOT NULL,
    namespace     TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    started_at    TEXT    NOT NULL,
    parent_run_id TEXT,
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    calls         INTEGER NOT NULL,
    tokens_in     INTEGER NOT NULL,
    tokens_out    INTEGER NOT NULL,
    cost          REAL    NOT NULL,
    PRIMARY KEY (run_id, line)
);

CREATE INDEX usage_lines_tenant_started ON usage_lines (tenant, started_at);
