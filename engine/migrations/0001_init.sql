-- The engine's tables. Portable SQL: TEXT and BIGINT only, so the same statements run on
-- SQLite and PostgreSQL. Times are milliseconds since the Unix epoch (UTC).

-- Every deployed definition, by content hash. A changed file is a new revision of its name;
-- running instances keep the revision they started with.
CREATE TABLE definitions (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    source TEXT NOT NULL,
    deployed_at BIGINT NOT NULL,
    UNIQUE (name, revision)
);

-- One row per request; `state` is the core's state as JSON, `row_version` the optimistic
-- concurrency counter, `history_seq`/`history_head` the tip of its hash-chained history.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL REFERENCES definitions (hash),
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    state TEXT NOT NULL,
    row_version BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    history_seq BIGINT NOT NULL,
    history_head TEXT NOT NULL
);
CREATE INDEX instances_by_status ON instances (status, started_at);
CREATE INDEX instances_by_definition ON instances (definition, status);

-- Tasks, open and closed, mirrored from the core's state for the inbox.
CREATE TABLE tasks (
    instance TEXT NOT NULL REFERENCES instances (id),
    seq BIGINT NOT NULL,
    step TEXT NOT NULL,
    role TEXT NOT NULL,
    assignee TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT,
    overdue BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by TEXT,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX tasks_open_by_role ON tasks (state, role, due_at);
CREATE INDEX tasks_by_assignee ON tasks (assignee, state);

-- Scheduled timers; a row is deleted when its timer fires or is cancelled.
CREATE TABLE timers (
    instance TEXT NOT NULL REFERENCES instances (id),
    seq BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX timers_by_due ON timers (due_at);

-- Emails and webhooks, written with the state change that caused them (transactional
-- outbox); `id` is stable and becomes the Message-ID of an email.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL REFERENCES instances (id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_by_state ON outbox (state, next_attempt_at);

-- The append-only history, hash-chained per instance.
CREATE TABLE history (
    instance TEXT NOT NULL REFERENCES instances (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE INDEX history_by_time ON history (at);
