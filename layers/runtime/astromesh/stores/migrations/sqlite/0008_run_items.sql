-- A run's growing lists (messages, steps, kept trace spans) as rows appended by each step,
-- instead of inside the run document rewritten whole at every save (astromesh.stores._journal).
-- runs.document holds the rest of the run; a document written before this migration still
-- holds its lists, and moves them here at its next save.
CREATE TABLE run_items (
    run_id  TEXT    NOT NULL,
    list    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (run_id, list, seq)
) WITHOUT ROWID;
