-- Daily digests. A person may ask for one email a day listing the tasks waiting for them,
-- instead of an email for every new task and reminder. The preference is per address: a
-- role's members are addresses in the definitions and need no account.
CREATE TABLE mail_preferences (
    email TEXT PRIMARY KEY,
    digest BIGINT NOT NULL,
    language TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The last day (YYYY-MM-DD, Paris) whose digest was considered for this person.
    last_day TEXT
);

-- A digest belongs to a person, not to a request: the outbox's request becomes optional.
-- SQLite cannot drop a NOT NULL constraint, so the table is rebuilt (the same statements run
-- on PostgreSQL; no table refers to the outbox).
CREATE TABLE outbox_rebuilt (
    id TEXT PRIMARY KEY,
    instance TEXT REFERENCES instances (id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    message_id TEXT,
    recipients TEXT,
    subject TEXT,
    body TEXT,
    provider TEXT
);
INSERT INTO outbox_rebuilt (id, instance, kind, payload, state, attempts, next_attempt_at, last_error, created_at, sent_at, message_id, recipients, subject, body, provider)
    SELECT id, instance, kind, payload, state, attempts, next_attempt_at, last_error, created_at, sent_at, message_id, recipients, subject, body, provider FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE INDEX outbox_by_state ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_provider ON outbox (provider, state, next_attempt_at);
