-- Memory: the episodic log (one row per finished run, the whole Episode as JSONB) and the
-- running summaries of the `summary` conversational strategy. Every statement is
-- IF NOT EXISTS because releases before this migration created the same tables on first use;
-- on such a database this migration only records version 4. No pgvector needed.

CREATE TABLE IF NOT EXISTS episodes (
    run_id      text             PRIMARY KEY,
    agent       text             NOT NULL,
    namespace   text             NOT NULL,
    session_id  text             NOT NULL,
    status      text             NOT NULL,
    started_at  timestamptz      NOT NULL,
    finished_at timestamptz      NOT NULL,
    tokens_in   integer          NOT NULL,
    tokens_out  integer          NOT NULL,
    cost        double precision NOT NULL,
    document    jsonb            NOT NULL
);

CREATE INDEX IF NOT EXISTS episodes_session ON episodes (session_id, finished_at DESC);
CREATE INDEX IF NOT EXISTS episodes_agent ON episodes (agent, finished_at DESC);
CREATE INDEX IF NOT EXISTS episodes_finished ON episodes (finished_at DESC);

CREATE TABLE IF NOT EXISTS conversation_summaries (
    session_key text        PRIMARY KEY,
    summary     text        NOT NULL,
    covered     integer     NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
