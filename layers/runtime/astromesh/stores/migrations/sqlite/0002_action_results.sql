-- Action results kept beside their run: written by whoever executed the action (the local
-- loop or a tool_executor Lambda) without touching the run document, read back by observe.
CREATE TABLE action_results (
    run_id      TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (run_id, call_id)
);
