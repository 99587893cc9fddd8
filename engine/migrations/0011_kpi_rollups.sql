-- The indicators of a month are read from one stored part per desk, revision and month (the
-- sums, counts and 1 %-wide histograms of every indicator and step timing of the requests that
-- ended that month), and those of a day, at the edges of a period, from one part per day, so
-- that comparing a million requests reads a few hundred rows; the same again for the
-- requests of each intake answer (choice and yes-no fields), for comparisons filtered on one. A request
-- that ends is queued in `kpi_pending` by the transaction that ends it, and folded into its
-- month's part later by `Engine::fold_indicators`, one fold at a time (the `kpi_fold` row is
-- the lock); until then it is read from its facts.
CREATE TABLE kpi_pending (
    instance TEXT PRIMARY KEY REFERENCES instances (id)
);
INSERT INTO kpi_pending (instance) SELECT id FROM instances WHERE status <> 'running';

CREATE TABLE kpi_rollups (
    desk TEXT NOT NULL,
    revision BIGINT NOT NULL,
    -- 'month' or 'day'.
    grain TEXT NOT NULL,
    -- The first instant of the month or day (UTC), in milliseconds.
    start BIGINT NOT NULL,
    -- '' and '' for all the requests; an intake field and its answer for those that gave it.
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    requests BIGINT NOT NULL,
    part BYTEA NOT NULL,
    PRIMARY KEY (grain, start, desk, revision, field, value)
);

CREATE TABLE kpi_fold (
    id BIGINT PRIMARY KEY,
    folded_at BIGINT NOT NULL
);
INSERT INTO kpi_fold (id, folded_at) VALUES (1, 0);

-- Reading the facts of the requests that ended in a period, or of a few queued ones.
CREATE INDEX instances_by_end ON instances (ended_at);
CREATE INDEX kpi_facts_by_instance ON kpi_facts (instance);
