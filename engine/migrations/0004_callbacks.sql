-- Provider callbacks are capabilities too: the callback URL carries a 256-bit token bound to
-- one waiting call (request and token), of which only the SHA-256 is stored; it is spent by
-- the first accepted callback.
CREATE TABLE callbacks (
    token_hash TEXT PRIMARY KEY,
    instance TEXT NOT NULL REFERENCES instances (id),
    token BIGINT NOT NULL,
    provider TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
