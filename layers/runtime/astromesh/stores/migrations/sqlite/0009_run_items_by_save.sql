-- A run's rows keyed by the save that appended them, then by list and position: one save's
-- new messages, steps and spans sit side by side in one leaf page of the B-tree, where the
-- (run_id, list, seq) key spread them over three (one per list), and every page a commit
-- touches is another 4 KiB frame written to the WAL (docs/performance.md, "Append-only run
-- items").
-- Reads sort a run's rows by (list, seq) as before; rows written before this migration
-- keep their place under version 0.
CREATE TABLE run_items_by_save (
    run_id  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    list    TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (run_id, version, list, seq)
) WITHOUT ROWID;

INSERT INTO run_items_by_save (run_id, version, list, seq, body)
    SELECT run_id, 0, list, seq, body FROM run_items;

DROP TABLE run_items;
ALTER TABLE run_items_by_save RENAME TO run_items;
