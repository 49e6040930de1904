-- The control plane of the REST API, kept beside the runs so every process (each Lambda
-- instance, each `astromesh dev`) sees the same state:
--   agents        agents registered through the API (`source` is the posted YAML/JSON text,
--                 re-validated on load; `revision` counts updates so instances notice them)
--   agent_status  deployed/paused, for registered and file-defined agents alike
--   api_keys      API keys, only a salted SHA-256 of the secret part is kept

CREATE TABLE agents (
    name        text        PRIMARY KEY,
    source      text        NOT NULL,
    revision    integer     NOT NULL,
    tenant      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_status (
    name        text        PRIMARY KEY,
    status      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    tenant      text        NOT NULL,
    agents      jsonb       NOT NULL,
    salt        text        NOT NULL,
    secret_hash text        NOT NULL,
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX api_keys_active ON api_keys (revoked_at);
