-- Runs and conversation history for the durable PostgreSQL backend.
-- The whole RunState lives in `document` (JSONB); the other columns copy the fields that
-- list_runs filters and sorts on. pgvector is deliberately not required here: the RAG tables
-- add `CREATE EXTENSION vector` in their own, later migration, so run state works on any
-- PostgreSQL.

CREATE TABLE runs (
    id          text        PRIMARY KEY,
    agent       text        NOT NULL,
    session_id  text        NOT NULL,
    namespace   text        NOT NULL,
    status      text        NOT NULL,
    version     integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    document    jsonb       NOT NULL
);

CREATE INDEX runs_created_at ON runs (created_at DESC, id DESC);
CREATE INDEX runs_agent_created_at ON runs (agent, created_at DESC, id DESC);
CREATE INDEX runs_session_created_at ON runs (session_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_key text        NOT NULL,
    role        text        NOT NULL,
    content     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_session_key ON messages (session_key, id);
