-- Settings the engine creates for itself (the secret that derives email link tokens).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Email links are capabilities: a token of 256 bits, of which only the SHA-256 is stored,
-- bound to a request, a task (or none: the sponsor's status link) and one recipient.
CREATE TABLE links (
    token_hash TEXT PRIMARY KEY,
    instance TEXT NOT NULL REFERENCES instances (id),
    task BIGINT,
    recipient TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    used_at BIGINT
);
CREATE INDEX links_by_task ON links (instance, task);
