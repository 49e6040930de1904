-- A run's growing lists (messages, steps, kept trace spans) as rows appended by each step,
-- instead of inside the run document rewritten whole at every save (astromesh.stores._journal).
-- runs.document holds the rest of the run; a document written before this migration still
-- holds its lists, and moves them here at its next save. Bodies are JSON kept as text: they
-- are only read back whole, never queried, and text takes them without a jsonb parse.
CREATE TABLE run_items (
    run_id  text    NOT NULL,
    list    text    NOT NULL,
    seq     integer NOT NULL,
    body    text    NOT NULL,
    PRIMARY KEY (run_id, list, seq)
);
