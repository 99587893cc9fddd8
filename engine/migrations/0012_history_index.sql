-- The history is only ever read by request (its primary key); the index by time cost one
-- more b-tree write for each of the ~10 events a command appends, on the write path of
-- every command, and no query used it.
DROP INDEX IF EXISTS history_by_time;
