-- Memory: the episodic log (one row per finished run, the whole Episode as JSON text) and the
-- running summaries of the `summary` conversational strategy. Every statement is
-- IF NOT EXISTS because releases before this migration created the same tables on first use;
-- on such a database this migration only records version 4. Timestamps are fixed-width UTC
-- text, so ordering the text orders the instants.

CREATE TABLE IF NOT EXISTS episodes (
    run_id      TEXT    PRIMARY KEY,
    agent       TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost        REAL    NOT NULL,
    document    TEXT    NOT NULL
);

CREATE INDEX IF NOT EXISTS episodes_session ON episodes (session_id, finished_at DESC);
CREATE INDEX IF NOT EXISTS episodes_agent ON episodes (agent, finished_at DESC);
CREATE INDEX IF NOT EXISTS episodes_finished ON episodes (finished_at DESC);

CREATE TABLE IF NOT EXISTS conversation_summaries (
    session_key TEXT    PRIMARY KEY,
    summary     TEXT    NOT NULL,
    covered     INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL
);
