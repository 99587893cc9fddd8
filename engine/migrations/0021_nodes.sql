-- The nodes serving this database, each writing its row every second while it runs (its
-- host and process id, so that a node restarted on the same host knows its predecessor is
-- dead), and who holds each claimed outbox message: a message held by a node that stopped
-- writing its row is claimed again at once, without waiting out its lease. NULL: an
-- external worker's lock (fetch-and-lock), held until it ends.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
