-- Runs and conversation history for the embedded SQLite backend.
-- The whole RunState lives in `document` (JSON text); the other columns copy the fields that
-- list_runs filters and sorts on, so those queries never parse JSON.
-- Timestamps are UTC text in a fixed-width format ('YYYY-MM-DDTHH:MM:SS.ffffffZ') so that
-- ordering the text orders the instants.

CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    agent       TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    document    TEXT    NOT NULL
);

CREATE INDEX runs_created_at ON runs (created_at DESC, id DESC);
CREATE INDEX runs_agent_created_at ON runs (agent, created_at DESC, id DESC);
CREATE INDEX runs_session_created_at ON runs (session_id, created_at DESC, id DESC);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE INDEX messages_session_key ON messages (session_key, id);
