-- The control plane of the REST API, kept beside the runs so every process (each Lambda
-- instance, each `astromesh dev`) sees the same state:
--   agents        agents registered through the API (`source` is the posted YAML/JSON text,
--                 re-validated on load; `revision` counts updates so instances notice them)
--   agent_status  deployed/paused, for registered and file-defined agents alike
--   api_keys      API keys, only a salted SHA-256 of the secret part is kept

CREATE TABLE agents (
    name        TEXT    PRIMARY KEY,
    source      TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    tenant      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE agent_status (
    name        TEXT    PRIMARY KEY,
    status      TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    agents      TEXT    NOT NULL,
    salt        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    label       TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL,
    revoked_at  TEXT
);

CREATE INDEX api_keys_active ON api_keys (revoked_at);
